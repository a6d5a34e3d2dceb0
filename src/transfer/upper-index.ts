import { promises as fs } from 'node:fs';
import path from 'node:path';
import { changedUnderneath, DirHandle } from '../archive/dir-handle.js';

/**
 * A cheap index of a directory tree (the upper layer) taken before it is sent
 * while the container runs; compared with the tree while frozen, it tells what
 * to send again (new or changed) and what to delete on the peer.
 */
export type TreeIndex = Map<string, string>;

function sig(st: import('node:fs').BigIntStats): string {
  return `${st.mode}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.uid}:${st.gid}`;
}

/**
 * Read beneath open directories (archive/dir-handle.ts): a directory the running
 * container swaps for a link while it is indexed is never followed. An entry
 * gone or changed underneath is left out; the index taken frozen has it.
 */
export async function indexTree(root: string): Promise<TreeIndex> {
  const out: TreeIndex = new Map();
  const walk = async (dir: DirHandle, rel: string): Promise<void> => {
    const names = (await fs.readdir(dir.self()).catch((e: unknown) => {
      if (changedUnderneath(e)) return [] as string[];
      throw e;
    })).sort();
    for (const n of names) {
      const child = rel ? `${rel}/${n}` : n;
      const st = await fs.lstat(dir.at(n), { bigint: true }).catch((e: unknown) => {
        if (changedUnderneath(e)) return undefined;
        throw e;
      });
      if (!st) continue;
      out.set(child, sig(st));
      if (!st.isDirectory()) continue;
      const sub = await dir.openDir(n).catch((e: unknown) => {
        if (changedUnderneath(e)) return undefined;
        throw e;
      });
      if (!sub) continue;
      try {
        await walk(sub, child);
      } finally {
        await sub.close();
      }
    }
  };
  const top = await DirHandle.open(root);
  try {
    out.set('', sig(await fs.lstat(top.self(), { bigint: true })));
    await walk(top, '');
  } finally {
    await top.close();
  }
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
