import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { isMountpoint, mountOverlay, umount } from '../native/native.js';

/** The container's root filesystem: the image as the lower layer, a per-container upper (CoW) layer. */
export interface RootfsLayout {
  lower: string;
  upper: string;
  work: string;
  merged: string;
}

export function rootfsLayout(containerDir: string, imageRootfs: string): RootfsLayout {
  const d = path.join(containerDir, 'rootfs');
  return { lower: imageRootfs, upper: path.join(d, 'upper'), work: path.join(d, 'work'), merged: path.join(d, 'merged') };
}

export async function mountRootfs(l: RootfsLayout): Promise<void> {
  for (const d of [l.upper, l.work, l.merged]) await fs.mkdir(d, { recursive: true, mode: 0o755 });
  if (await isMountpoint(l.merged)) return;
  try {
    mountOverlay({ lower: [l.lower], upper: l.upper, work: l.work, target: l.merged });
  } catch (e) {
    throw new TsmError('EMOUNT', `cannot mount the overlay root filesystem at ${l.merged}: ${(e as Error).message}`, {
      fix: 'check that overlayfs is available (modprobe overlay) and the state root is not itself on overlayfs',
      cause: e,
    });
  }
}

/** Unmount (lazily if busy). Idempotent. */
export async function unmountRootfs(l: RootfsLayout): Promise<void> {
  for (let i = 0; i < 5 && (await isMountpoint(l.merged)); i++) {
    try {
      umount(l.merged, { detach: i > 0 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return;
      if (i === 4) throw new TsmError('EMOUNT', `cannot unmount ${l.merged}: ${(e as Error).message}`, { cause: e });
    }
  }
}
