import { promises as fs } from 'node:fs';
import { TsmError } from '../errors/errors.js';
import { parseFdinfoLocks, planFileLocks, type HeldLock, type LockPlan } from './file-locks.js';

/** The locks the processes `pids` hold, from /proc/PID/fdinfo (processes and descriptors that go away meanwhile are skipped). */
export async function readHeldLocks(pids: number[], proc = '/proc'): Promise<HeldLock[]> {
  const out: HeldLock[] = [];
  for (const pid of pids) {
    const fds = await fs.readdir(`${proc}/${pid}/fdinfo`).catch(() => [] as string[]);
    for (const name of fds) {
      const fd = Number(name);
      const text = await fs.readFile(`${proc}/${pid}/fdinfo/${name}`, 'utf8').catch(() => '');
      if (!text.includes('lock:')) continue;
      const path = await fs.readlink(`${proc}/${pid}/fd/${name}`).catch(() => `descriptor ${fd}`);
      out.push(...parseFdinfoLocks(text, { pid, fd, path }));
    }
  }
  return out;
}

/**
 * Before the freeze: the container's locks, and a refusal naming each one the
 * move cannot carry (nothing frozen, nothing sent yet).
 */
export async function checkFileLocks(name: string, pids: number[]): Promise<LockPlan> {
  const plan = planFileLocks(await readHeldLocks(pids));
  if (plan.refused.length) {
    throw new TsmError('EPREFLIGHT', `"${name}" holds file locks a move cannot carry: ${plan.refused.join('; ')}`, {
      fix: 'release them (or stop what holds them) and move again; the container was not frozen',
    });
  }
  return plan;
}
