import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

/**
 * An exclusive lock held by one process: a directory created with mkdir (atomic)
 * holding the owner's pid. A lock whose owner is dead is taken over. Never waits:
 * a held lock is an EBUSY error at once.
 */
export interface Lock {
  release(): Promise<void>;
}

/** Whether a process with this pid exists (EPERM: it does, owned by someone else); a zombie (killed, not yet reaped) does not. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Locks this process holds (a second holder in the same process is busy too). */
const heldHere = new Set<string>();

export async function acquireLock(lockDir: string, what: string): Promise<Lock> {
  if (heldHere.has(lockDir)) {
    throw new TsmError('EBUSY', `${what} is busy: another operation in this process is changing it`, { fix: 'wait for it to finish and try again' });
  }
  await fs.mkdir(path.dirname(lockDir), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.mkdir(lockDir, { mode: 0o700 });
      await fs.writeFile(path.join(lockDir, 'owner'), `${process.pid}\n`, { mode: 0o600 });
      heldHere.add(lockDir);
      return {
        release: async () => {
          heldHere.delete(lockDir);
          await fs.rm(lockDir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = await fs.readFile(path.join(lockDir, 'owner'), 'utf8').catch(() => '');
      const pid = Number.parseInt(owner.trim(), 10);
      if (Number.isInteger(pid) && pid > 0 && alive(pid) && pid !== process.pid) {
        throw new TsmError('EBUSY', `${what} is busy: another tsmigrate command (pid ${pid}) is changing it`, {
          fix: 'wait for that command to finish and try again',
        });
      }
      if (!owner && attempt === 0) {
        // The owner may be between mkdir and writing its pid: give it a moment.
        await new Promise((r) => setTimeout(r, 50));
        const again = await fs.readFile(path.join(lockDir, 'owner'), 'utf8').catch(() => '');
        if (again) continue;
      }
      await fs.rm(lockDir, { recursive: true, force: true });
    }
  }
  throw new TsmError('EBUSY', `${what} is busy: could not take its lock at ${lockDir}`, { fix: 'try again' });
}

export async function withLock<T>(lockDir: string, what: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(lockDir, what);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** withLock, waiting up to `waitMs` for a live holder to let go (polling: the lock is a directory). */
export async function withLockWaiting<T>(lockDir: string, what: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  const until = Date.now() + waitMs;
  for (;;) {
    let lock: Lock;
    try {
      lock = await acquireLock(lockDir, what);
    } catch (e) {
      if (!(e instanceof TsmError && e.code === 'EBUSY') || Date.now() >= until) throw e;
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }
}
