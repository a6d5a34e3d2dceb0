/**
 * Enabling controllers down a cgroup2 hierarchy: the pure v2 backend enables its
 * controllers in every ancestor of the container's cgroup, and the v1 backend on a
 * hybrid host does the same in the unified hierarchy for hugetlb when the kernel
 * keeps that controller in cgroup2.
 */
import type { Logger } from '../util/logger.js';
import { readCgroupFileOpt, safeJoin, writeCgroupFile } from './fsutil.js';

export const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter(Boolean);

/** The cgroup2 mount and each directory of `parent` below it ('a/b' -> [mount, mount/a, mount/a/b]). */
export function v2Ancestors(mount: string, parent: string): string[] {
  const segs = parent.split('/');
  return [mount, ...segs.map((_, i) => safeJoin(mount, segs.slice(0, i + 1).join('/')))];
}

/**
 * Enable the wanted controllers in dir's cgroup.subtree_control where available:
 * one write for all of them, or one at a time if that fails.
 */
export async function enableV2Controllers(dir: string, wanted: readonly string[], logger: Logger): Promise<void> {
  const available = new Set(words(await readCgroupFileOpt(dir, 'cgroup.controllers')));
  const enabled = new Set(words(await readCgroupFileOpt(dir, 'cgroup.subtree_control')));
  const todo = wanted.filter((c) => available.has(c) && !enabled.has(c));
  if (todo.length === 0) return;
  try {
    await writeCgroupFile(dir, 'cgroup.subtree_control', todo.map((c) => `+${c}`).join(' '));
    return;
  } catch {
    // fall through: find out which one the kernel refuses
  }
  for (const c of todo) {
    try {
      await writeCgroupFile(dir, 'cgroup.subtree_control', `+${c}`);
    } catch (e) {
      // e.g. EBUSY: the cgroup has processes of its own ("no internal processes" rule).
      logger.warn(`cannot enable the ${c} controller in ${dir}: ${(e as Error).message}`);
    }
  }
}
