import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * A cheap index of a directory tree (the upper layer) taken before it is sent
 * while the container runs; compared with the tree while frozen, it tells what
 * to send again (new or changed) and what to delete on the peer.
 */
export type TreeIndex = Map<string, string>;

function sig(st: import('node:fs').BigIntStats): string {
  return `${st.mode}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.uid}:${st.gid}`;
}

export async function indexTree(root: string): Promise<TreeIndex> {
  const out: TreeIndex = new Map();
  const walk = async (rel: string): Promise<void> => {
    const abs = rel ? path.join(root, rel) : root;
    const st = await fs.lstat(abs, { bigint: true });
    out.set(rel, sig(st));
    if (!st.isDirectory()) return;
    const names = (await fs.readdir(abs)).sort();
    for (const n of names) await walk(rel ? `${rel}/${n}` : n);
  };
  await walk('');
  return out;
}

export interface TreeDelta {
  /** new or changed paths ('' is the root) */
  changed: Set<string>;
  /** paths to remove on the peer first: gone, or changed type (file <-> dir <-> link) */
  deleted: string[];
}

const typeOf = (s: string) => Number(s.split(':')[0]) & 0o170000;

/** Pure: what changed between two indexes. */
export function diffIndex(before: TreeIndex, after: TreeIndex): TreeDelta {
  const changed = new Set<string>();
  const deleted: string[] = [];
  for (const [p, s] of after) {
    const b = before.get(p);
    if (b === s) continue;
    changed.add(p);
    if (b !== undefined && typeOf(b) !== typeOf(s)) deleted.push(p);
  }
  for (const p of before.keys()) if (!after.has(p)) deleted.push(p);
  // only the top-most of deleted subtrees matter
  deleted.sort();
  const top: string[] = [];
  for (const p of deleted) {
    const last = top[top.length - 1];
    if (last !== undefined && last !== '' && p.startsWith(`${last}/`)) continue;
    top.push(p);
  }
  return { changed, deleted: top.filter((p) => p !== '') };
}

/** The include predicate for packTree: changed entries and the directories leading to them. */
export function deltaFilter(delta: TreeDelta): (rel: string) => boolean {
  const keep = new Set<string>();
  for (const p of delta.changed) {
    keep.add(p);
    let d = p;
    while (d.includes('/')) {
      d = d.slice(0, d.lastIndexOf('/'));
      keep.add(d);
    }
  }
  return (rel) => keep.has(rel);
}

/** Remove `rel` inside `root` without following a symlink in any parent component. */
export async function safeRemove(root: string, rel: string): Promise<void> {
  const parts = rel.split('/');
  if (!rel || parts.some((p) => p === '' || p === '.' || p === '..') || rel.includes('\0')) {
    throw new Error(`unsafe path "${rel}"`);
  }
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    cur = path.join(cur, p);
    const st = await fs.lstat(cur).catch(() => undefined);
    if (!st) return; // already gone
    if (!st.isDirectory()) throw new Error(`unsafe path "${rel}": ${p} is not a directory`);
  }
  await fs.rm(path.join(root, rel), { recursive: true, force: true });
}
