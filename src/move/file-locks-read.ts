import { promises as fs } from 'node:fs';
import { TsmError } from '../errors/errors.js';
import { lockFileKey, parseFdinfoLocks, parseProcLocks, planFileLocks, type LockFacts, type LockPlan } from './file-locks.js';

const field = (text: string, name: string) => new RegExp(`^${name}:\\s*(\\d+)$`, 'm').exec(text)?.[1];

/**
 * The facts planFileLocks needs: the locks the processes `pids` hold and the
 * files they have open (/proc/PID/fdinfo, the device from their mountinfo),
 * and the host's /proc/locks. Processes and descriptors that go away
 * meanwhile are skipped.
 */
export async function readLockFacts(pids: number[], proc = '/proc'): Promise<LockFacts> {
  const facts: LockFacts = { held: [], system: [], openFiles: new Map(), pids: new Set(pids) };
  for (const pid of pids) {
    const devs = new Map<string, string>();
    for (const line of (await fs.readFile(`${proc}/${pid}/mountinfo`, 'utf8').catch(() => '')).split('\n')) {
      const [id, , dev] = line.split(' ');
      if (id && dev) devs.set(id, dev);
    }
    for (const name of await fs.readdir(`${proc}/${pid}/fdinfo`).catch(() => [] as string[])) {
      const text = await fs.readFile(`${proc}/${pid}/fdinfo/${name}`, 'utf8').catch(() => '');
      const dev = devs.get(field(text, 'mnt_id') ?? '');
      const ino = field(text, 'ino');
      if (!dev || !ino) continue;
      const path = await fs.readlink(`${proc}/${pid}/fd/${name}`).catch(() => `descriptor ${name} of process ${pid}`);
      facts.openFiles.set(lockFileKey(dev, ino), path);
      if (text.includes('lock:')) facts.held.push(...parseFdinfoLocks(text, { pid, fd: Number(name), path }));
    }
  }
  facts.system = parseProcLocks(await fs.readFile(`${proc}/locks`, 'utf8').catch(() => ''));
  return facts;
}

/**
 * Before the freeze: the container's locks, and a refusal naming each one the
 * move cannot carry (nothing frozen, nothing sent yet).
 */
export async function checkFileLocks(name: string, pids: number[]): Promise<LockPlan> {
  const plan = planFileLocks(await readLockFacts(pids));
  if (plan.refused.length) {
    throw new TsmError('EPREFLIGHT', `a move cannot carry the file locks of "${name}": ${plan.refused.join('; ')}`, {
      fix: 'release those locks (or stop the process that holds them) and move again; nothing was frozen',
    });
  }
  return plan;
}
