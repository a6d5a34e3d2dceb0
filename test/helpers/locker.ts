import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO, cliOk } from './cli.js';
import { busyboxRootfs } from './images.js';

/**
 * A busybox rootfs with /bin/locker (test/fixtures/locker.c, built static with
 * the build-essential setup.sh installs): takes flock, POSIX, OFD locks and
 * leases and holds them; `locker try` tests a lock without waiting.
 */
export function lockerRootfs(): string {
  const dir = path.join(tmpdir(), 'tsm-locker-rootfs');
  if (existsSync(path.join(dir, 'bin/locker'))) return dir;
  const tmp = mkdtempSync(path.join(tmpdir(), 'tsm-locker-'));
  cpSync(busyboxRootfs(), tmp, { recursive: true, verbatimSymlinks: true });
  const bin = path.join(tmp, 'locker.bin');
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', bin, path.join(REPO, 'test/fixtures/locker.c')]);
  copyFileSync(bin, path.join(tmp, 'bin/locker'));
  rmSync(bin);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

export async function importLocker(root: string, name = 'locker'): Promise<void> {
  await cliOk(root, ['image', 'import', name, lockerRootfs()], { timeoutMs: 120000 });
}
