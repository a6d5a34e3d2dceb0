import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import * as native from '../../src/native/native.js';

const C = native.constants;

/** One entry of a tree snapshot: what packTree/extractTar promise to keep. */
export interface Snap {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: string;
  xattrs: Record<string, string>;
  sha256?: string;
  target?: string;
  rdev?: string;
  /** first path sharing this inode (hard links) */
  inode?: string;
}

function typeOf(mode: bigint): string {
  const t = Number(mode & BigInt(C.S_IFMT));
  return t === C.S_IFREG ? 'f' : t === C.S_IFDIR ? 'd' : t === C.S_IFLNK ? 'l' : t === C.S_IFCHR ? 'c' : t === C.S_IFBLK ? 'b' : t === C.S_IFIFO ? 'p' : 's';
}

export async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(p)) h.update(c as Buffer);
  return h.digest('hex');
}

/** A recursive listing ('.' = root): type, mode, owner, size, mtime, xattrs, content hash, symlink target, device, hard-link group. */
export async function snapshot(root: string): Promise<Map<string, Snap>> {
  const out = new Map<string, Snap>();
  const inodes = new Map<string, string>();
  const visit = async (rel: string): Promise<void> => {
    const abs = rel === '.' ? root : path.join(root, rel);
    const st = await fs.lstat(abs, { bigint: true });
    const xattrs: Record<string, string> = {};
    for (const n of native.listXattrs(abs).sort()) xattrs[n] = native.getXattr(abs, n)?.toString('base64') ?? '<gone>';
    const s: Snap = {
      type: typeOf(st.mode),
      mode: (st.mode & 0o7777n).toString(8),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      xattrs,
    };
    if (s.type === 'f') {
      const key = `${st.dev}:${st.ino}`;
      if (!inodes.has(key)) inodes.set(key, rel);
      s.inode = inodes.get(key)!;
    }
    if (s.type === 'l') s.target = await fs.readlink(abs);
    if (s.type === 'c' || s.type === 'b') s.rdev = st.rdev.toString();
    if (s.type === 'd') s.size = 0;
    out.set(rel, s);
    if (s.type === 'd') for (const n of (await fs.readdir(abs)).sort()) await visit(rel === '.' ? n : `${rel}/${n}`);
  };
  await visit('.');
  for (const [rel, s] of out) if (s.type === 'f') s.sha256 = await sha256File(path.join(root, rel));
  return out;
}

export function assertSameTree(want: Map<string, Snap>, got: Map<string, Snap>, what = 'tree'): void {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: same paths`);
  for (const [rel, s] of want) assert.deepEqual(got.get(rel), s, `${what}: entry ${rel}`);
}

