import { realpathSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { readMountInfo, type MountInfo } from '../native/native.js';
import type { FilesystemFacts } from './peer-space.js';

const TMPFS_MAGIC = 0x01021994;

/** The nearest existing ancestor of `dir` (itself when it exists), symlinks resolved. */
function existingAncestor(dir: string): string {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      return realpathSync.native(d);
    } catch {
      if (d === '/') return '/';
    }
  }
}

/** The mount `p` (a real path) is on: the longest mount point above it. */
function mountOf(p: string, mounts: MountInfo[]): string {
  let best = '/';
  for (const m of mounts) {
    const mp = m.mountPoint;
    if ((p === mp || p.startsWith(mp.endsWith('/') ? mp : `${mp}/`)) && mp.length > best.length) best = mp;
  }
  return best;
}

/**
 * A reader of the filesystems directories are (or will be) on, for planSpace:
 * statfs of the nearest existing ancestor; one mount table per reader.
 */
export function filesystemReader(): (dir: string) => FilesystemFacts {
  const mounts = readMountInfo();
  return (dir) => {
    const d = existingAncestor(dir);
    const st = statfsSync(d);
    return {
      id: String(statSync(d).dev),
      mountPoint: mountOf(d, mounts),
      tmpfs: Number(st.type) === TMPFS_MAGIC,
      freeBytes: Number(st.bavail) * Number(st.bsize),
    };
  };
}
