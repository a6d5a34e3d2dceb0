import { promises as fs } from 'node:fs';
import { TsmError } from '../errors/errors.js';
import { alive, type Lock } from '../state/lock.js';
import type { ConfinedDir } from '../util/confined-dir.js';

/** Store directories locked by this process, by device and inode (a second holder here is busy too). */
const heldHere = new Set<string>();

/**
 * A store's own lock: the directory `lock` in it, holding `owner` (the pid),
 * as state/lock.ts makes them, but reached through the store's descriptor and
 * never through a link. Taking over a dead holder's lock removes `lock/owner`
 * and the then-empty `lock`, nothing else: a `lock` holding anything more is
 * refused, never deleted.
 */
export async function lockStoreDir(dir: ConfinedDir, what: string): Promise<Lock> {
  const st = await dir.stat();
  const key = `${st.dev}:${st.ino}`;
  if (heldHere.has(key)) throw new TsmError('EBUSY', `${what} is busy: another operation in this process is changing it`, { fix: 'wait for it to finish and try again' });
  for (let attempt = 0; attempt < 3; attempt++) {
    const made = await fs.mkdir(dir.at('lock'), { mode: 0o700 }).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') return false;
        throw e;
      },
    );
    if (made) {
      const lock = await dir.sub('lock');
      try {
        await lock.createFile('owner', Buffer.from(`${process.pid}\n`));
      } finally {
        await lock.close();
      }
      heldHere.add(key);
      return {
        release: async () => {
          heldHere.delete(key);
          await removeLock(dir);
        },
      };
    }
    const lock = await dir.sub('lock'); // a link named lock is refused here
    const owner = (await lock.readFile('owner').finally(() => lock.close()))?.toString('utf8') ?? '';
    const pid = Number.parseInt(owner.trim(), 10);
    if (Number.isInteger(pid) && pid > 0 && alive(pid) && pid !== process.pid) {
      throw new TsmError('EBUSY', `${what} is busy: another tsmigrate command (pid ${pid}) is changing it`, { fix: 'wait for that command to finish and try again' });
    }
    if (!owner && attempt === 0) {
      // its holder may be between mkdir and writing its pid
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    await removeLock(dir);
  }
  throw new TsmError('EBUSY', `${what} is busy: could not take its lock`, { fix: 'try again' });
}

/** `lock/owner`, then the empty `lock`: nothing else, and never through a link. */
async function removeLock(dir: ConfinedDir): Promise<void> {
  const lock = await dir.sub('lock').catch((e: unknown) => {
    if (e instanceof TsmError) throw e;
    return undefined; // gone
  });
  if (!lock) return;
  try {
    await lock.unlink('owner');
  } finally {
    await lock.close();
  }
  await dir.rmdir('lock').catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    throw new TsmError('EBUSY', `the store's lock directory ${dir.label}/lock holds files tsmigrate did not put there`, {
      fix: `look at them and remove ${dir.label}/lock by hand`,
    });
  });
}
