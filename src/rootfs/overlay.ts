import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { isMountpoint, mountOverlay, umount } from '../native/native.js';
import { shimPath } from '../shim/locate.js';
import type { IdRange } from '../userns/ranges.js';

/**
 * The container's root filesystem: the image as the lower layer, a per-container upper (CoW) layer.
 * With a user namespace (idmap), the lower layer is an idmapped view of the image
 * (host id 0 appears as idmap.start) mounted at idmappedLower, and the upper's top
 * directories belong to the container's root.
 */
export interface RootfsLayout {
  lower: string;
  upper: string;
  work: string;
  merged: string;
  idmap?: IdRange;
  idmappedLower?: string;
}

export function rootfsLayout(containerDir: string, imageRootfs: string, idmap?: IdRange): RootfsLayout {
  const d = path.join(containerDir, 'rootfs');
  const l: RootfsLayout = { lower: imageRootfs, upper: path.join(d, 'upper'), work: path.join(d, 'work'), merged: path.join(d, 'merged') };
  return idmap ? { ...l, idmap, idmappedLower: path.join(d, 'lower') } : l;
}

async function mountIdmappedLower(l: RootfsLayout & { idmap: IdRange; idmappedLower: string }, shim: string): Promise<void> {
  await fs.mkdir(l.idmappedLower, { recursive: true, mode: 0o700 });
  if (await isMountpoint(l.idmappedLower)) return;
  try {
    await promisify(execFile)(shimPath(shim), ['idmap-mount', '--userns', `${l.idmap.start}:${l.idmap.size}`, '--', l.lower, l.idmappedLower]);
  } catch (e) {
    const why = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim().replace(/^tsm-shim: /, '');
    throw new TsmError('EMOUNT', `cannot make the idmapped view of the image for the user namespace: ${why}`, {
      fix: 'put the image store on a filesystem that supports idmapped mounts (ext4, xfs, btrfs, tmpfs) and use Linux 5.19 or newer, or run without --userns',
      cause: e,
    });
  }
}

/** Mount the overlay; `shim` (Runtime.tools.shim) makes the idmapped lower of a user-namespaced container. */
export async function mountRootfs(l: RootfsLayout, shim: string): Promise<void> {
  for (const d of [l.upper, l.work, l.merged]) await fs.mkdir(d, { recursive: true, mode: 0o755 });
  if (await isMountpoint(l.merged)) return;
  let lower = l.lower;
  if (l.idmap && l.idmappedLower) {
    await mountIdmappedLower({ ...l, idmap: l.idmap, idmappedLower: l.idmappedLower }, shim);
    for (const d of [l.upper, l.work]) await fs.chown(d, l.idmap.start, l.idmap.start);
    lower = l.idmappedLower;
  }
  try {
    mountOverlay({ lower: [lower], upper: l.upper, work: l.work, target: l.merged });
  } catch (e) {
    throw new TsmError('EMOUNT', `cannot mount the overlay root filesystem at ${l.merged}: ${(e as Error).message}`, {
      fix: 'check that overlayfs is available (modprobe overlay) and the state root is not itself on overlayfs',
      cause: e,
    });
  }
}

async function unmountAll(target: string): Promise<void> {
  for (let i = 0; i < 5 && (await isMountpoint(target)); i++) {
    try {
      umount(target, { detach: i > 0 });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return;
      if (i === 4) throw new TsmError('EMOUNT', `cannot unmount ${target}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Unmount (lazily if busy). Idempotent. */
export async function unmountRootfs(l: RootfsLayout): Promise<void> {
  await unmountAll(l.merged);
  if (l.idmappedLower) await unmountAll(l.idmappedLower);
}
