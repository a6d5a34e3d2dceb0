/**
 * Pack a directory tree (typically an overlayfs upper layer) into a tar
 * stream that safe-extract.ts restores exactly, and helpers to write / read
 * such archives as (optionally zstd-compressed) files.
 *
 * Archive conventions (PAX / POSIX.1-2001 tar, written with tar-stream):
 *
 *  - Entry names are "./REL" ("./etc/passwd", directories end in "/"); the
 *    first entry is "./", the root directory itself (its mode, owner, xattrs
 *    and times; the extractor applies them to the target directory).
 *  - The walk is depth-first, parents before children, names sorted by their
 *    UTF-8 bytes (like `LC_ALL=C sort`): the same tree gives the same archive.
 *  - Every entry has a PAX header with `mtime` and `atime` in nanoseconds
 *    ("1700000000.123456789", see xattr-pax.ts); uid/gid are numeric (uname /
 *    gname empty), in the PAX `uid` / `gid` records too when they do not fit
 *    the ustar field. Modes keep setuid / setgid / sticky.
 *  - Extended attributes of every namespace (trusted.overlay.*, security.*,
 *    user.*, system.posix_acl_*) as `TSMIGRATE.xattr.<name>=<base64>`.
 *  - Regular files with several names in the tree: the first name in walk
 *    order is a 'file' entry, the later ones are 'link' entries to it. Other
 *    types are never stored as hard links (overlayfs shares one inode among
 *    its whiteouts; each whiteout is stored as its own 0:0 device).
 *  - Files with holes: only the data is stored, plus `TSMIGRATE.sparse`
 *    (see sparse.ts).
 *  - Character / block devices (overlay whiteouts are 0:0 character
 *    devices), FIFOs, symlinks (target stored, never followed) are stored;
 *    sockets cannot be and are skipped (reported through onWarning and in
 *    `stats.skipped`).
 *  - File names and symlink targets must be valid UTF-8 (tar-stream reads
 *    names as UTF-8); packing fails on one that is not, rather than storing a
 *    mangled name.
 *
 * Every entry is reached beneath the open directory above it without
 * following a link at any component (dir-handle.ts): a tree swapped underneath
 * (a running container turning a directory into a link to `/`) never makes
 * the pack read outside it.
 *
 * File content is streamed with back-pressure (1 MiB reads); nothing holds a
 * whole file in memory. The tree must not change while it is packed (a file
 * that shrinks fails the pack; a file that grows is cut at its size when it
 * was opened).
 */
import { createHash } from 'node:crypto';
import { constants as C, createReadStream, createWriteStream, promises as fs, type BigIntStats as BigStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CompressStream } from 'zstd-napi';
import { TsmError } from '../errors/errors.js';
import * as native from '../native/native.js';
import { changedUnderneath, DirHandle } from './dir-handle.js';
import { inflateZstd } from './inflate.js';
import { PRESETS, type InflateLimits } from './limits.js';
import { extractTar, type ExtractOptions, type ExtractResult } from './safe-extract.js';
import { dataSize, encodeSparseMap, probeSparse, readSegments, SPARSE_PAX_KEY, type Segment, type SparseMap } from './sparse.js';
import { encodePaxTime, encodeXattrPax, timeFromNs, type XattrEntry } from './xattr-pax.js';

export interface PackOptions {
  /**
   * Called with each path relative to the root ('a/b', no leading './'; the
   * root itself is always packed). Return false to leave the entry out; a
   * directory left out is not descended into.
   */
  include?: (relPath: string) => boolean;
  /** Abort packing: the stream is destroyed with signal.reason. */
  signal?: AbortSignal;
  /** Non-fatal problems (skipped sockets). */
  onWarning?: (msg: string) => void;
  /** Bytes per read of file content. Default 1 MiB. */
  chunkSize?: number;
  /**
   * The tree is in use (a running container's upper layer): a file that shrinks
   * while it is read is padded to the size its header declared instead of failing.
   * Only for copies whose changed files are sent again later (the move's delta).
   */
  live?: boolean;
}

/** Live counters of a pack (final once the stream has ended). */
export interface PackStats {
  /** Archive entries written (root included). */
  entries: number;
  /** Bytes of file content stored (data segments only, for sparse files). */
  contentBytes: number;
  /** Regular files stored with a TSMIGRATE.sparse map. */
  sparseFiles: number;
  /** Relative paths not stored (sockets). */
  skipped: string[];
}

/** The stream packTree returns: a Readable of tar bytes with live `stats`. */
export interface PackStream extends Readable {
  readonly stats: PackStats;
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Largest uid/gid the ustar header field holds as tar-stream writes it (6 octal digits). */
const USTAR_ID_MAX = 0o777777;
/** tar-stream writes the ustar mtime as a 32-bit int. */
const USTAR_TIME_MAX = 0x7fffffff;

/**
 * A tar stream of the tree at `dir` (see the module comment for the format).
 * Errors (unreadable files, a tree changing underneath, abort) destroy the
 * stream with a TsmError (or signal.reason).
 */
export function packTree(dir: string, opts: PackOptions = {}): PackStream {
  return new Packer(dir, opts).out;
}

class Packer {
  readonly out: PackStream;
  private readonly pack = tar.pack();
  private readonly stats: PackStats = { entries: 0, contentBytes: 0, sparseFiles: 0, skipped: [] };
  /** "dev:ino" of regular files with nlink > 1 -> first archive name. */
  private readonly links = new Map<string, string>();
  private paused = false;
  private waiters: Array<() => void> = [];
  private seekable = true;
  private noatime = true;
  private root = '';

  constructor(
    private readonly dir: string,
    private readonly opts: PackOptions,
  ) {
    const self = this;
    const out = new Readable({
      highWaterMark: 1 << 20,
      read() {
        self.paused = false;
        self.pack.resume();
        const w = self.waiters;
        self.waiters = [];
        for (const f of w) f();
      },
      destroy(err, cb) {
        if (!self.pack.destroyed) self.pack.destroy(err ?? undefined);
        const w = self.waiters;
        self.waiters = [];
        for (const f of w) f();
        cb(err);
      },
    }) as Readable & { stats: PackStats };
    Object.defineProperty(out, 'stats', { value: this.stats, enumerable: true });
    this.out = out;

    // Manual pipe pack -> out, so that `paused` also throttles the walker
    // (tar-stream pushes headers of empty entries without back-pressure).
    this.pack.on('data', (data: unknown) => {
      const chunk = data as Buffer;
      if (!out.push(chunk)) {
        this.paused = true;
        this.pack.pause();
      }
    });
    this.pack.on('end', () => out.push(null));
    this.pack.on('error', (e: Error) => out.destroy(e));

    const signal = opts.signal;
    const onAbort = (): void => {
      out.destroy(signal?.reason instanceof Error ? signal.reason : abortError(signal?.reason));
    };
    if (signal?.aborted) {
      queueMicrotask(onAbort);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    this.run()
      .then(() => this.pack.finalize())
      .catch((e: unknown) => {
        if (!out.destroyed) out.destroy(e instanceof Error ? e : new Error(String(e)));
      })
      .finally(() => signal?.removeEventListener('abort', onAbort));
  }

  private stopped(): boolean {
    return this.out.destroyed || this.opts.signal?.aborted === true;
  }

  /** Wait while the consumer is not reading. */
  private async ready(): Promise<void> {
    while (this.paused && !this.stopped()) await new Promise<void>((r) => this.waiters.push(r));
    if (this.stopped()) throw this.opts.signal?.reason ?? new Error('pack stream destroyed');
  }

  private async run(): Promise<void> {
    try {
      this.root = await fs.realpath(this.dir);
    } catch (e) {
      throw new TsmError('EIO', `cannot pack ${this.dir}: ${oneLine(e)}`, { fix: 'check that the directory exists', cause: e });
    }
    let top: DirHandle;
    try {
      top = await DirHandle.open(this.root);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new TsmError('EINVAL_ARG', `cannot pack ${this.dir}: not a directory`, { fix: 'pass a directory' });
      throw this.ioError('', e);
    }
    try {
      const st = await this.lstat({ path: top.self() }, '');
      await this.entry({ path: top.self() }, '', st);
      await this.walk(top, '');
    } finally {
      await top.close();
    }
  }

  private async lstat(at: Place, rel: string) {
    try {
      return await fs.lstat(at.path, { bigint: true });
    } catch (e) {
      throw this.ioError(rel, e);
    }
  }

  private ioError(rel: string, e: unknown): TsmError {
    if (e instanceof TsmError) return e;
    return new TsmError('EIO', `cannot pack ${JSON.stringify(rel === '' ? '.' : rel)} in ${this.root}: ${oneLine(e)}`, {
      fix: 'make sure nothing modifies the directory while it is packed (stop or freeze the container)',
      cause: e,
    });
  }

  private async walk(dir: DirHandle, rel: string): Promise<void> {
    let raw: Buffer[];
    try {
      raw = await dir.names();
    } catch (e) {
      if (this.opts.live && (e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.ioError(rel, e);
    }
    raw.sort(Buffer.compare);
    for (const b of raw) {
      const name = utf8(b, rel === '' ? b.toString('utf8') : `${rel}/${b.toString('utf8')}`, 'file name');
      const child = rel === '' ? name : `${rel}/${name}`;
      if (this.opts.include && !this.opts.include(child)) continue;
      const at: Place = { path: dir.at(name), open: (flags) => dir.openFile(name, flags) };
      const st = await this.lstat(at, child).catch((e: TsmError) => {
        if (this.opts.live && isGone(e)) return undefined; // removed while we walked: the delta deletes it
        throw e;
      });
      if (!st) continue;
      await this.entry(at, child, st);
      if ((st.mode & BigInt(C.S_IFMT)) !== BigInt(C.S_IFDIR)) continue;
      const sub = await dir.openDir(name).catch((e: unknown) => {
        // gone, or swapped for a link or a file since its lstat (live tree): the delta, taken frozen, sends what it is
        if (this.opts.live && changedUnderneath(e)) return undefined;
        throw this.ioError(child, e);
      });
      if (!sub) continue;
      try {
        await this.walk(sub, child);
      } finally {
        await sub.close();
      }
    }
  }

  private async entry(at: Place, rel: string, st: BigStats): Promise<void> {
    await this.ready();
    const fmt = Number(st.mode & BigInt(C.S_IFMT));
    const name = rel === '' ? './' : `./${rel}`;
    switch (fmt) {
      case C.S_IFREG:
        return this.regular(at, rel, name, st);
      case C.S_IFDIR:
        return this.void(at, rel, { name: rel === '' ? name : `${name}/`, type: 'directory' }, st);
      case C.S_IFLNK: {
        let target: Buffer;
        try {
          target = await fs.readlink(at.path, { encoding: 'buffer' });
        } catch (e) {
          throw this.ioError(rel, e);
        }
        return this.void(at, rel, { name, type: 'symlink', linkname: utf8(target, rel, 'symlink target') }, st);
      }
      case C.S_IFIFO:
        return this.void(at, rel, { name, type: 'fifo' }, st);
      case C.S_IFCHR:
      case C.S_IFBLK: {
        const { major, minor } = devNumbers(st.rdev);
        const type = fmt === C.S_IFCHR ? 'character-device' : 'block-device';
        return this.void(at, rel, { name, type, devmajor: major, devminor: minor }, st);
      }
      default:
        this.stats.skipped.push(rel);
        this.opts.onWarning?.(`not packed: ${JSON.stringify(rel)} is a ${fmt === C.S_IFSOCK ? 'socket' : 'file of unknown type'}`);
    }
  }

  /** Common header fields and PAX records of `st` (+ xattrs of the path). */
  private base(at: Place, rel: string, st: BigStats): { header: Header; pax: Record<string, string> } {
    const uid = Number(st.uid);
    const gid = Number(st.gid);
    const mtime = timeFromNs(st.mtimeNs);
    const atime = timeFromNs(st.atimeNs);
    const pax: Record<string, string> = { mtime: encodePaxTime(mtime), atime: encodePaxTime(atime) };
    if (uid >= USTAR_ID_MAX) pax['uid'] = String(uid);
    if (gid >= USTAR_ID_MAX) pax['gid'] = String(gid);
    encodeXattrPax(this.xattrs(at, rel), pax);
    const secs = Math.min(Math.max(Number(mtime.sec), 0), USTAR_TIME_MAX);
    const header: Header = {
      name: '',
      // Keep the file type bits: tar-stream replaces a zero mode with 0644/0755.
      mode: Number(st.mode),
      uid: Math.min(uid, USTAR_ID_MAX),
      gid: Math.min(gid, USTAR_ID_MAX),
      uname: '',
      gname: '',
      mtime: new Date(secs * 1000),
    };
    return { header, pax };
  }

  private xattrs(at: Place, rel: string): XattrEntry[] {
    const abs = at.path;
    let names: string[];
    try {
      names = native.listXattrs(abs);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return [];
      throw this.ioError(rel, e);
    }
    const out: XattrEntry[] = [];
    for (const n of [...names].sort()) {
      let v: Buffer | null;
      try {
        v = native.getXattr(abs, n);
      } catch (e) {
        throw this.ioError(rel, e);
      }
      if (v !== null) out.push({ name: n, value: v });
    }
    return out;
  }

  private async void(at: Place, rel: string, extra: Partial<Header>, st: BigStats): Promise<void> {
    const { header, pax } = this.base(at, rel, st);
    await this.add({ ...header, ...extra, size: 0, pax });
  }

  /** Add an entry without content and wait until tar-stream has taken it. */
  private add(header: Header): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve()));
    }).then(() => {
      this.stats.entries++;
    });
  }

  private async regular(at: Place, rel: string, name: string, lst: BigStats): Promise<void> {
    const key = `${lst.dev}:${lst.ino}`;
    if (lst.nlink > 1n) {
      const first = this.links.get(key);
      if (first !== undefined) {
        const secs = Math.min(Math.max(Number(lst.mtimeNs / 1_000_000_000n), 0), USTAR_TIME_MAX);
        await this.add({ name, type: 'link', linkname: first, size: 0, mode: Number(lst.mode), mtime: new Date(secs * 1000) });
        return;
      }
    }
    const fh = await this.open(at, rel).catch((e: TsmError) => {
      if (this.opts.live && isGone(e)) return undefined;
      throw e;
    });
    if (!fh) return; // removed while we walked (live tree): the delta deletes it
    try {
      const st = await fh.stat({ bigint: true });
      if (st.ino !== lst.ino || st.dev !== lst.dev) {
        if (this.opts.live) return; // replaced (live tree): the new file goes in the delta
        throw this.ioError(rel, new Error('the file was replaced while being packed'));
      }
      const size = Number(st.size);
      const sparse = this.sparse(fh, size);
      const segments: Segment[] = sparse === null ? (size > 0 ? [{ offset: 0, length: size }] : []) : sparse.segments;
      const stored = sparse === null ? size : dataSize(sparse);
      const { header, pax } = this.base(at, rel, st);
      if (sparse !== null) pax[SPARSE_PAX_KEY] = encodeSparseMap(sparse);
      let sink!: ReturnType<tar.Pack['entry']>;
      const done = new Promise<void>((resolve, reject) => {
        const h: Header = { ...header, name, type: 'file', size: stored, pax };
        sink = this.pack.entry(h as tar.Header, (err) => (err ? reject(err) : resolve()));
      });
      done.catch(() => undefined); // reported through the pipeline / awaited below
      const src = Readable.from(readSegments(fh, segments, { chunkSize: this.opts.chunkSize ?? 1 << 20, what: rel, padShrunk: this.opts.live === true }), {
        objectMode: false,
      });
      try {
        await pipeline(src, sink as unknown as NodeJS.WritableStream);
        await done;
      } catch (e) {
        if (this.stopped()) throw this.opts.signal?.reason ?? e;
        throw this.ioError(rel, e);
      }
      this.stats.entries++;
      this.stats.contentBytes += stored;
      if (sparse !== null) this.stats.sparseFiles++;
      if (lst.nlink > 1n) this.links.set(key, name);
    } finally {
      await fh.close();
    }
  }

  private async open(at: Place, rel: string): Promise<FileHandle> {
    if (!at.open) throw this.ioError(rel, new Error('not a file'));
    // O_NONBLOCK: a file swapped for a FIFO since its lstat must not hang the open (the inode check then finds the swap)
    const flags = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
    if (this.noatime) {
      try {
        return await at.open(flags | C.O_NOATIME);
      } catch (e) {
        // O_NOATIME needs ownership or CAP_FOWNER.
        if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw this.ioError(rel, e);
        this.noatime = false;
      }
    }
    try {
      return await at.open(flags);
    } catch (e) {
      throw this.ioError(rel, e);
    }
  }

  private sparse(fh: FileHandle, size: number): SparseMap | null {
    if (!this.seekable) return null;
    try {
      return probeSparse(fh.fd, size, native);
    } catch {
      // Addon missing / too old, or the filesystem refuses SEEK_DATA: store densely.
      this.seekable = false;
      return null;
    }
  }
}

/** Where an entry is: a path that resolves beneath open directories (dir-handle.ts), and how to open it as a file. */
interface Place {
  path: string;
  open?: (flags: number) => Promise<FileHandle>;
}

/** tar-stream's header plus the PAX records it writes (missing from @types/tar-stream). */
type Header = Partial<tar.Header> & { name: string; pax?: Record<string, string> };

/** Linux dev_t -> (major, minor) (glibc's gnu_dev_major / gnu_dev_minor). */
function devNumbers(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

function utf8(b: Buffer, where: string, what: string): string {
  const s = b.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(b)) {
    throw new TsmError('EINVAL_ARG', `cannot pack ${JSON.stringify(where)}: its ${what} is not valid UTF-8`, {
      fix: 'rename the file (tsmigrate archives store names as UTF-8)',
    });
  }
  return s;
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.trim();
}

function abortError(reason: unknown): Error {
  const e = new Error(reason === undefined ? 'the operation was aborted' : String(reason));
  e.name = 'AbortError';
  return e;
}

// ---------------------------------------------------------------------------
// files

export interface PackFileOptions extends PackOptions {
  /** zstd-compress the archive: true (level 3) or a level (1..19; negative = faster). Default false. */
  zstd?: boolean | number;
  /** fsync the file before returning. Default false. */
  fsync?: boolean;
}

export interface PackFileResult {
  /** Size of the written file (compressed size with zstd). */
  bytes: number;
  /** Archive entries (root included). */
  entries: number;
  /** Hex SHA-256 of the written file, computed while writing. */
  sha256: string;
  /** Uncompressed tar size. */
  tarBytes: number;
  stats: PackStats;
}

/**
 * Pack `dir` into `file` (created or truncated), zstd-compressed if asked.
 * On failure the partial file is removed.
 */
export async function packTreeToFile(dir: string, file: string, opts: PackFileOptions = {}): Promise<PackFileResult> {
  const rootAbs = path.resolve(dir);
  const fileAbs = path.resolve(file);
  if (fileAbs === rootAbs || fileAbs.startsWith(`${rootAbs}/`)) {
    throw new TsmError('EINVAL_ARG', `cannot pack ${dir} into ${file}: the archive would be inside the tree it packs`, {
      fix: 'write the archive outside the directory',
    });
  }
  const src = packTree(dir, opts);
  let tarBytes = 0;
  const countTar = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      tarBytes += chunk.length;
      cb(null, chunk);
    },
  });
  const hash = createHash('sha256');
  let bytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  const level = opts.zstd === true ? 3 : typeof opts.zstd === 'number' ? opts.zstd : null;
  let ok = false;
  try {
    // flush: fsync before close.
    const sink = createWriteStream(file, { mode: 0o600, highWaterMark: 1 << 20, flush: opts.fsync === true });
    const signalOpt = opts.signal ? { signal: opts.signal } : {};
    if (level !== null) {
      await pipeline(src, countTar, new CompressStream({ compressionLevel: level }), hashing, sink, signalOpt);
    } else {
      await pipeline(src, countTar, hashing, sink, signalOpt);
    }
    ok = true;
  } catch (e) {
    if (e instanceof TsmError || (e instanceof Error && e.name === 'AbortError')) throw e;
    throw new TsmError('EIO', `cannot write archive ${file}: ${oneLine(e)}`, { fix: 'check free space and permissions', cause: e });
  } finally {
    if (!ok) {
      src.destroy();
      await fs.rm(file, { force: true });
    }
  }
  return { bytes, entries: src.stats.entries, sha256: hash.digest('hex'), tarBytes, stats: src.stats };
}

export interface UnpackFileOptions extends ExtractOptions {
  /** Decompress with zstd: 'auto' (default) looks at the file's magic number. */
  zstd?: boolean | 'auto';
  /** Bounds of the zstd decompression (limits.ts). Default: the upper-layer preset. */
  inflate?: InflateLimits;
}

/**
 * Extract an archive file written by packTreeToFile (plain or zstd) into
 * `dir` with safe-extract's rules. For an overlay upper layer pass
 * `{ allowWhiteouts: true }` (and `allowDevices` if device nodes may occur).
 * The caller removes a partial `dir` on failure (see safe-extract.ts).
 */
export async function unpackFileToTree(file: string, dir: string, opts: UnpackFileOptions = {}): Promise<ExtractResult> {
  let zstd = opts.zstd ?? 'auto';
  if (zstd === 'auto') {
    const fh = await fs.open(file, 'r').catch((e: unknown) => {
      throw new TsmError('EIO', `cannot read archive ${file}: ${oneLine(e)}`, { fix: 'check the path', cause: e });
    });
    try {
      const head = Buffer.alloc(4);
      const { bytesRead } = await fh.read(head, 0, 4, 0);
      zstd = bytesRead === 4 && head.equals(ZSTD_MAGIC);
    } finally {
      await fh.close();
    }
  }
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  if (!zstd) return extractTar(input, dir, opts);
  const dec = inflateZstd(opts.inflate ?? PRESETS.upper.inflate, opts.what ?? `the archive ${file}`);
  // extractTar runs its own pipeline from `dec`; feed `dec` from the file here.
  const feeding = pipeline(input, dec).catch((e: unknown) => {
    dec.destroy(e instanceof Error ? e : new Error(String(e)));
  });
  try {
    return await extractTar(dec, dir, opts);
  } finally {
    input.destroy();
    dec.destroy();
    await feeding;
  }
}

/** An error that says the path no longer exists, or is no longer what was listed (now a link). */
function isGone(e: unknown): boolean {
  return changedUnderneath(e instanceof TsmError ? e.cause : e);
}
