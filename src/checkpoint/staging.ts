import { promises as fs, statfsSync } from 'node:fs';
import path from 'node:path';

/**
 * Where CRIU writes images while the container is frozen: a tmpfs when it has
 * room (the freeze window is then bounded by memory bandwidth, not the disk),
 * else a directory under the state root. $TSMIGRATE_STAGING overrides.
 */
export function stagingBase(root: string, neededBytes: number, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['TSMIGRATE_STAGING'];
  if (fromEnv) return fromEnv;
  try {
    const st = statfsSync('/dev/shm');
    const free = Number(st.bavail) * Number(st.bsize);
    const TMPFS_MAGIC = 0x01021994;
    if (Number(st.type) === TMPFS_MAGIC && free > neededBytes * 2 + (256 << 20)) return '/dev/shm/tsmigrate';
  } catch {
    /* no /dev/shm */
  }
  return path.join(root, 'staging');
}

/** A fresh private directory (0700) under the staging base. */
export async function makeStagingDir(base: string, label: string): Promise<string> {
  await fs.mkdir(base, { recursive: true, mode: 0o700 });
  await fs.chmod(base, 0o700);
  return fs.mkdtemp(path.join(base, `${label}-`));
}
