/**
 * Content digest of a directory tree (an image rootfs).
 *
 * The digest depends only on what a container would see, never on how the
 * tree got here: the same tree copied from a directory or extracted from a tar
 * of that directory has the same digest. Timestamps, inode numbers and hard
 * link structure are not part of it.
 *
 * Every entry (the root included, as the empty path) is visited in sorted
 * byte order of its relative path, and one canonical record is hashed per entry:
 *
 *   <len>:<path bytes> <type> <mode & 07777, octal> <uid> <gid> [extra]\n
 *
 * with type f/d/l/c/b/p/s and extra = "<size> <sha256 hex>" for files,
 * "<len>:<target bytes>" for symlinks, "<major> <minor>" for devices. Paths and
 * link targets are raw bytes (length-prefixed, so any name is unambiguous).
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type BigIntStats } from 'node:fs';
import { pipeline } from 'node:stream/promises';

export const TREE_DIGEST_VERSION = 'tsmigrate-tree-digest-v1';

export interface TreeDigest {
  /** 'sha256:<64 hex>' */
  digest: string;
  /** Bytes of regular-file content (hard-linked files counted once). */
  size: number;
  /** Entries in the tree of any type, the root excluded. */
  files: number;
}

export interface TreeEntry {
  /** Path relative to the root, raw bytes ('' is the root). */
  rel: Buffer;
  abs: Buffer;
  st: BigIntStats;
}

const SLASH = Buffer.from('/');

/** All entries under `root` (never following symlinks), sorted by relative path bytes. */
export async function walkTree(root: string): Promise<TreeEntry[]> {
  const rootAbs = Buffer.from(root);
  const out: TreeEntry[] = [{ rel: Buffer.alloc(0), abs: rootAbs, st: await fs.lstat(rootAbs, { bigint: true }) }];
  const stack: TreeEntry[] = [out[0]!];
  if (!out[0]!.st.isDirectory()) throw new Error(`${root} is not a directory`);
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const names = await fs.readdir(dir.abs, { encoding: 'buffer' });
    for (const name of names) {
      const abs = Buffer.concat([dir.abs, SLASH, name]);
      const rel = dir.rel.length === 0 ? Buffer.from(name) : Buffer.concat([dir.rel, SLASH, name]);
      const st = await fs.lstat(abs, { bigint: true });
      const e: TreeEntry = { rel, abs, st };
      out.push(e);
      if (st.isDirectory()) stack.push(e);
    }
  }
  out.sort((a, b) => Buffer.compare(a.rel, b.rel));
  return out;
}

export function typeChar(st: BigIntStats): 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's' {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isCharacterDevice()) return 'c';
  if (st.isBlockDevice()) return 'b';
  if (st.isFIFO()) return 'p';
  return 's';
}

/** Linux dev_t encoding (glibc gnu_dev_major / gnu_dev_minor). */
export function devMajorMinor(rdev: bigint): { major: bigint; minor: bigint } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major, minor };
}

async function sha256File(abs: Buffer): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(abs), h);
  return h.digest('hex');
}

function lp(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${b.length}:`), b]);
}

/** Run `fn` over `items` with at most `limit` in flight; results keep their order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Digest of the tree at `root` (see the module comment). */
export async function digestTree(root: string, opts: { concurrency?: number } = {}): Promise<TreeDigest> {
  const entries = await walkTree(root);
  // File hashes and link targets, read in parallel; records are hashed in order below.
  const extra = await mapLimit(entries, opts.concurrency ?? 8, async (e): Promise<string | Buffer> => {
    if (e.st.isFile()) return sha256File(e.abs);
    if (e.st.isSymbolicLink()) return fs.readlink(e.abs, { encoding: 'buffer' });
    return '';
  });
  const h = createHash('sha256');
  h.update(`${TREE_DIGEST_VERSION}\n`);
  let size = 0n;
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    const st = e.st;
    const t = typeChar(st);
    h.update(lp(e.rel));
    h.update(` ${t} ${(st.mode & 0o7777n).toString(8)} ${st.uid} ${st.gid}`);
    switch (t) {
      case 'f': {
        h.update(` ${st.size} ${String(extra[i])}`);
        const key = `${st.dev}:${st.ino}`;
        if (!seen.has(key)) {
          seen.add(key);
          size += st.size;
        }
        break;
      }
      case 'l':
        h.update(' ');
        h.update(lp(extra[i] as Buffer));
        break;
      case 'c':
      case 'b': {
        const { major, minor } = devMajorMinor(st.rdev);
        h.update(` ${major} ${minor}`);
        break;
      }
      default:
        break;
    }
    h.update('\n');
  });
  return { digest: `sha256:${h.digest('hex')}`, size: Number(size), files: entries.length - 1 };
}
