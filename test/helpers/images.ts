import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, copyFileSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cliOk } from './cli.js';

/** Where scripts/build-images.sh puts the test images (CI runs it from setup.sh). */
export const IMAGE_CACHE = process.env['TSMIGRATE_IMAGE_CACHE'] ?? '/var/cache/tsmigrate/images';

/** A busybox rootfs: the build script's, or one made here in a moment from Debian's busybox-static. */
export function busyboxRootfs(): string {
  const built = path.join(IMAGE_CACHE, 'busybox/rootfs');
  if (existsSync(path.join(built, 'bin/busybox'))) return built;
  const dir = path.join(tmpdir(), 'tsm-busybox-rootfs');
  if (existsSync(path.join(dir, 'bin/sh'))) return dir;
  const tmp = mkdtempSync(path.join(tmpdir(), 'tsm-bb-'));
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'var/log']) mkdirSync(path.join(tmp, d), { recursive: true });
  copyFileSync('/bin/busybox', path.join(tmp, 'bin/busybox'));
  execFileSync('chmod', ['755', path.join(tmp, 'bin/busybox')]);
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', path.join(tmp, 'bin', a));
  writeFileSync(path.join(tmp, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(path.join(tmp, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}

export function debianRootfs(): string {
  const built = path.join(IMAGE_CACHE, 'debian/rootfs');
  if (!existsSync(path.join(IMAGE_CACHE, 'debian/.complete'))) {
    throw new Error(`the Debian test image is missing (${built}): run scripts/build-images.sh (scripts/setup.sh does)`);
  }
  return built;
}

export async function importBusybox(root: string, name = 'busybox'): Promise<void> {
  await cliOk(root, ['image', 'import', name, busyboxRootfs()], { timeoutMs: 120000 });
}
