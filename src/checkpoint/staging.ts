import { promises as fs, statfsSync } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { alive } from '../state/lock.js';

const TMPFS_MAGIC = 0x01021994;

/** Whether `dir` is on tmpfs, and the bytes free there (statfs). Throws when `dir` does not exist. */
export function filesystemOf(dir: string): { tmpfs: boolean; freeBytes: number } {
  const st = statfsSync(dir);
  return { tmpfs: Number(st.type) === TMPFS_MAGIC, freeBytes: Number(st.bavail) * Number(st.bsize) };
}

/**
 * Where CRIU writes images while the container is frozen: a tmpfs when it has
 * room (the freeze window is then bounded by memory bandwidth, not the disk),
 * else a directory under the state root. `override` ($TSMIGRATE_STAGING, read by the composition root) wins.
 */
export function stagingBase(root: string, neededBytes: number, override: string | undefined): string {
  if (override) return override;
  try {
    const shm = filesystemOf('/dev/shm');
    if (shm.tmpfs && shm.freeBytes > neededBytes * 2 + (256 << 20)) return '/dev/shm/tsmigrate';
  } catch {
    /* no /dev/shm */
  }
  return path.join(root, 'staging');
}

/** A fresh private directory (0700) under the staging base, marked with its owner's pid. */
export async function makeStagingDir(base: string, label: string): Promise<string> {
  await fs.mkdir(path.dirname(base), { recursive: true, mode: 0o700 });
  await fs.mkdir(base, { mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  await assertPrivateBase(base);
  await sweepStaleStaging(base);
  const dir = await fs.mkdtemp(path.join(base, `${label}-`));
  await fs.writeFile(path.join(dir, OWNER), `${process.pid}\n`, { mode: 0o600 });
  return dir;
}

const OWNER = '.tsmigrate-owner';

/**
 * The staging base holds memory images (secrets, and code CRIU will run): it
 * must be a real directory (not a link), owned by us, that nobody else may
 * enter. Under a world-writable parent (/dev/shm) another user can create it
 * first, after a reboot; it is then refused, never adopted or chmod'ed.
 */
export async function assertPrivateBase(base: string): Promise<void> {
  const st = await fs.lstat(base);
  const uid = process.geteuid?.() ?? 0;
  const fix = `remove it (rm -rf ${base}) so that tsmigrate creates it, or point TSMIGRATE_STAGING at a directory only root can enter`;
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new TsmError('EBAD_STATE', `the staging directory ${base} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a directory'}: memory images will not be written there`, { fix });
  }
  if (st.uid !== uid) {
    throw new TsmError('EBAD_STATE', `the staging directory ${base} belongs to uid ${st.uid}, not to tsmigrate's uid ${uid}: another user may have created it to read or replace memory images`, { fix });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new TsmError('EBAD_STATE', `the staging directory ${base} has mode ${(st.mode & 0o777).toString(8)}: other users may enter it (tsmigrate makes it 0700)`, { fix });
  }
}

/**
 * Remove staging directories whose owner died (a checkpoint or move killed
 * with SIGKILL): memory images on a tmpfs hold RAM until someone does.
 */
export async function sweepStaleStaging(base: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(base).catch(() => [] as string[])) {
    const dir = path.join(base, name);
    const owner = await fs.readFile(path.join(dir, OWNER), 'utf8').catch(() => undefined);
    const pid = owner === undefined ? NaN : Number.parseInt(owner, 10);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    await fs.rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

