/**
 * Safe tar extraction into a directory.
 *
 * Archives come from untrusted places (image tarballs, checkpoint archives,
 * migration streams from the network), so every entry is checked before
 * anything is written for it:
 *
 *  - names are normalised ("./" and empty components dropped); absolute names,
 *    any ".." component and NUL bytes are refused;
 *  - no symlink is ever followed while creating a path: every path is
 *    resolved beneath a descriptor of the target by openat2 with
 *    RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (beneath.ts), every parent component
 *    must be a real directory, and entries are made with the *at calls in
 *    their parent's descriptor (files with O_EXCL|O_NOFOLLOW after removing
 *    whatever was there);
 *  - limits (limits.ts: entries, path depth, content bytes, one entry's
 *    declared size) are checked from each entry's header, before anything is
 *    written for it; `only` admits nothing but named regular files at the top
 *    (an exported checkpoint);
 *  - hard links must name a regular file extracted earlier from the same
 *    archive (so they can never reach outside the target);
 *  - symlinks may point anywhere: they are created, never followed;
 *  - device nodes are skipped (default), refused (`refuseDevices`) or created
 *    (`allowDevices`); 0:0 character devices (overlayfs whiteouts) are created
 *    only with `allowWhiteouts`.
 *
 * tsmigrate's own PAX records (written by pack.ts) are understood:
 * TSMIGRATE.xattr.* (binary-safe xattrs, preferred over SCHILY.xattr.* /
 * LIBARCHIVE.xattr.* for the same name; see xattr-pax.ts), TSMIGRATE.sparse
 * (files with holes; see sparse.ts), and `mtime` / `atime` are applied with
 * nanosecond precision (the native addon is required). The archive entry for
 * the root ("./") sets the target directory's own owner, mode, xattrs, times.
 *
 * The first unsafe entry rejects the whole archive with
 * TsmError('EINVAL_ARG', 'unsafe archive: entry "X" ...'), a crossed limit
 * with TsmError('EINVAL_ARG', 'refused ...'). Entries before it
 * have been written already: THE CALLER MUST REMOVE THE PARTIAL TARGET
 * DIRECTORY on failure (extract into a fresh temporary directory and rename it
 * into place on success, as the image store does).
 *
 * Another process changing the target during extraction (a directory swapped
 * for a symlink) cannot make a write land outside it: the entry is refused.
 */
import { closeSync, constants as C, promises as fs } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { TsmError } from '../errors/errors.js';
import * as native from '../native/native.js';
import { chmodNodeAt, createFileAt, DirTree, fdSink, kindAt, type At } from './beneath.js';
import { limitError, PRESETS, tarEntryProblem, type TarLimits, type TarSeen } from './limits.js';
import { parseSparseMap, SPARSE_PAX_KEY, writeContent, type SparseMap } from './sparse.js';
import { attrsOf, setTimes, type Attrs, type Header, type Xattr } from './entry-attrs.js';

export interface ExtractOptions {
  /** Create 0:0 character devices (overlayfs whiteouts). Default false. */
  allowWhiteouts?: boolean;
  /**
   * Create other device nodes (needs root). Default false: they are skipped,
   * listed in `skipped`, and reported in one warning; never created.
   */
  allowDevices?: boolean;
  /** Reject the archive on a device node that is not created (instead of skipping it). Default false. */
  refuseDevices?: boolean;
  /** Restore uid/gid from the archive. Default true. */
  preserveOwner?: boolean;
  onWarning?: (msg: string) => void;
  signal?: AbortSignal;
  /** Entries, depth and bytes (limits.ts). Default: the upper-layer preset. */
  limits?: TarLimits;
  /**
   * Only these names, as regular files directly under the target (plus the
   * root directory entry), each at most the given content bytes; any other
   * entry (a symlink, a directory, a nested path) refuses the archive.
   */
  only?: ReadonlyMap<string, number>;
  /** What the input is, for a refusal ("the archive /tmp/x.tar.zst"). Default "the archive". */
  what?: string;
}

export interface ExtractResult {
  /** Entries created (everything except `skipped`). */
  entries: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** Normalised names of entries that were not created (device nodes). */
  skipped: string[];
}

const UNSAFE_FIX = 'do not use this archive: it could write outside its directory; recreate it from a trusted source';

/** Extract a tar stream into `targetDir` (created if missing). See the module comment for the rules. */
export async function extractTar(
  input: NodeJS.ReadableStream | Readable,
  targetDir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  await fs.mkdir(targetDir, { recursive: true });
  const tree = DirTree.open(targetDir);
  try {
    return await extractInto(tree, input, opts);
  } finally {
    tree.close();
  }
}

async function extractInto(tree: DirTree, input: NodeJS.ReadableStream | Readable, opts: ExtractOptions): Promise<ExtractResult> {
  const x = new Extractor(tree, opts);
  const extract = tar.extract();
  let inFlight: Promise<void> = Promise.resolve();
  extract.on('entry', (header, source, next) => {
    const stream = source as unknown as Readable;
    // Listen before any await: the entry stream may fail (truncated archive)
    // while the handler is still preparing the path.
    stream.on('error', () => undefined);
    const isFile = header.type === 'file' || header.type === 'contiguous-file';
    let data: AsyncIterator<Buffer> | null = null;
    if (isFile) data = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    else stream.resume();
    inFlight = x.entry(header as unknown as Header, data).then(
      () => next(),
      (err: unknown) => {
        x.failed = true;
        stream.resume();
        next(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
  try {
    await pipeline(input as Readable, rawGuard(x, opts.what ?? 'the archive'), extract, opts.signal ? { signal: opts.signal } : {});
  } catch (e) {
    x.failed = true;
    // Let the entry being written settle so nothing is created after we return.
    await inFlight.catch(() => undefined);
    throw translatePipelineError(e);
  }
  await inFlight;
  await x.finish();
  return { entries: x.entries, bytes: x.bytes, skipped: x.skipped };
}

/** Header and padding bytes allowed per entry (PAX records with xattrs included), and for what is read ahead of the parser. */
const HEADER_ALLOWANCE = 1 << 20;
const READ_AHEAD = 16 << 20;

/**
 * The tar stream's own bytes, bounded by what its entries declared: headers
 * that never make an entry (a flood of PAX headers, zero blocks after the end)
 * are not checked by any entry's limits.
 */
function rawGuard(x: Extractor, what: string): Transform {
  let raw = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      raw += chunk.length;
      const allowed = x.seen.bytes + (x.seen.entries + 1) * HEADER_ALLOWANCE + READ_AHEAD;
      cb(raw > allowed ? limitError(what, `holds more than ${allowed - x.seen.bytes} bytes of headers and padding for ${x.seen.entries} entries`) : null, chunk);
    },
  });
}

function translatePipelineError(e: unknown): unknown {
  if (e instanceof TsmError) return e;
  if (e instanceof Error && e.name === 'AbortError') return e;
  const err = e as NodeJS.ErrnoException;
  const msg = oneLine(err?.message ?? String(e));
  if (err && typeof err.syscall === 'string') {
    return new TsmError('EIO', `cannot read the archive: ${msg}`, { fix: 'check that the archive file is readable', cause: e });
  }
  return new TsmError('EINVAL_ARG', `not a valid tar archive: ${msg}`, {
    fix: 'check that the file is a complete tar archive (tar -tvf FILE)',
    cause: e,
  });
}

class Extractor {
  entries = 0;
  bytes = 0;
  skipped: string[] = [];
  failed = false;
  /** Relative paths known to be real directories (not symlinks). '' is the root. */
  private readonly dirs = new Set<string>(['']);
  /** Relative paths of regular files written by this extraction (hard link targets). */
  private readonly files = new Set<string>();
  /** Directory attributes applied at the end, deepest first. */
  private readonly deferred = new Map<string, Attrs>();
  private readonly preserveOwner: boolean;
  private readonly limits: TarLimits;
  /** what the headers declared so far (checked before writing) */
  readonly seen: TarSeen = { entries: 0, bytes: 0 };
  private ownerWarned = false;
  private xattrProblems: string[] = [];

  constructor(
    private readonly tree: DirTree,
    private readonly opts: ExtractOptions,
  ) {
    this.preserveOwner = opts.preserveOwner ?? true;
    this.limits = opts.limits ?? PRESETS.upper.tar;
  }

  private warn(msg: string): void {
    this.opts.onWarning?.(msg);
  }

  async entry(h: Header, data: AsyncIterator<Buffer> | null): Promise<void> {
    const raw = h.name;
    const type = h.type; // null: a typeflag tar-stream does not know (GNU sparse, volume label, ...)
    if (this.failed || this.opts.signal?.aborted) throw this.opts.signal?.reason ?? new Error('extraction stopped');

    const parts = normalise(raw, raw, 'name');
    const rel = parts.join('/');
    const size = type === 'file' || type === 'contiguous-file' ? (h.size ?? 0) : 0;
    this.admit(raw, parts, type, size);
    const attrs = attrsOf(h, (m) => this.xattrProblems.push(`${m} (on ${quote(rel)})`));
    try {
      switch (type) {
        case 'file':
        case 'contiguous-file': {
          if (data === null) throw new Error('internal: no data stream for a file entry');
          const sparse = sparseMapOf(h, raw);
          await this.file(raw, parts, rel, attrs, data, sparse);
          break;
        }
        case 'directory':
          await this.directory(raw, parts, rel, attrs);
          break;
        case 'symlink':
          await this.symlink(raw, parts, rel, attrs, h.linkname ?? '');
          break;
        case 'link':
          await this.hardlink(raw, parts, rel, h.linkname ?? '');
          break;
        case 'fifo':
          await this.special(raw, parts, rel, attrs, 'p', 0, 0);
          break;
        case 'character-device':
        case 'block-device': {
          const major = h.devmajor ?? 0;
          const minor = h.devminor ?? 0;
          const kind = type === 'character-device' ? 'c' : 'b';
          const whiteout = kind === 'c' && major === 0 && minor === 0;
          if ((whiteout && this.opts.allowWhiteouts) || this.opts.allowDevices) {
            await this.special(raw, parts, rel, attrs, kind, major, minor);
          } else if (this.opts.refuseDevices) {
            throw unsafe(raw, `is a device node (${kind} ${major}:${minor}); device nodes are not allowed here`);
          } else {
            if (rel === '') throw unsafe(raw, 'names the target directory itself');
            this.skipped.push(rel);
          }
          break;
        }
        default:
          throw new TsmError('EINVAL_ARG', `unsupported archive: entry ${quote(raw)} has an unsupported type (${type ?? 'unknown typeflag'})`, {
            fix: 'recreate the archive with GNU tar (tar -cf) or docker export',
          });
      }
    } catch (e) {
      if (e instanceof TsmError || (e instanceof Error && e.name === 'AbortError')) throw e;
      const err = e as NodeJS.ErrnoException;
      if (err?.code === 'ELOOP' || err?.code === 'EXDEV') throw unsafe(raw, 'goes through a symlink');
      throw new TsmError('EIO', `cannot extract archive entry ${quote(raw)}: ${oneLine(err?.message ?? String(e))}`, {
        fix: `check free space and permissions under ${this.tree.path}`,
        cause: e,
      });
    }
  }

  /** The limits and `only`, from the header alone: before anything is written for the entry. */
  private admit(raw: string, parts: string[], type: string | null, size: number): void {
    const what = this.opts.what ?? 'the archive';
    const problem = tarEntryProblem(this.limits, this.seen, { depth: parts.length, size });
    if (problem !== null) throw limitError(what, problem);
    const only = this.opts.only;
    if (only !== undefined && !(parts.length === 0 && type === 'directory')) {
      const max = parts.length === 1 ? only.get(parts[0]!) : undefined;
      if (max === undefined) throw unsafe(raw, `is not one of ${[...only.keys()].join(', ')}`);
      if (type !== 'file' && type !== 'contiguous-file') throw unsafe(raw, `is a ${type ?? 'special entry'}, not a regular file`);
      if (size > max) throw limitError(what, `declares ${quote(parts[0]!)} of ${size} bytes (at most ${max})`);
    }
    this.seen.entries++;
    this.seen.bytes += size;
  }

  /** Make sure every parent of `parts` is a real directory inside the root, creating missing ones (0755). */
  private async parents(raw: string, parts: string[]): Promise<void> {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (this.dirs.has(rel)) continue;
      const made = this.tree.withParent(parts.slice(0, i), (at) => {
        const kind = kindAt(at.fd, at.name);
        if (kind === 'symlink') throw unsafe(raw, `goes through the symlink ${quote(rel)}`);
        if (kind !== null && kind !== 'dir') throw unsafe(raw, `has a parent ${quote(rel)} that is not a directory`);
        if (kind === null) native.mkdirat(at.fd, at.name, 0o755);
        return kind === null;
      });
      // whatever the umask: as tar does for a parent the archive does not list
      if (made) await this.dirChmod(rel, 0o755);
      this.dirs.add(rel);
    }
  }

  private async dirChmod(rel: string, mode: number): Promise<void> {
    const fd = this.tree.open(rel, C.O_RDONLY | C.O_DIRECTORY);
    try {
      await fdSink(fd).chmod(mode);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Remove a non-directory already at `at` (tar overwrite semantics; never
   * follows it). Returns true when a directory is already there.
   */
  private clear(raw: string, rel: string, at: At, wantDir: boolean): boolean {
    const kind = kindAt(at.fd, at.name);
    if (kind === null) return false;
    if (kind === 'dir') {
      if (wantDir) return true;
      throw new TsmError('EINVAL_ARG', `unsupported archive: entry ${quote(raw)} would replace a directory`, {
        fix: 'recreate the archive without conflicting entries',
      });
    }
    native.unlinkat(at.fd, at.name);
    this.files.delete(rel);
    return false;
  }

  /** Parents made, whatever was at the entry's place removed; runs `fn` in the parent's descriptor. */
  private async at<T>(raw: string, parts: string[], rel: string, wantDir: boolean, fn: (at: At, exists: boolean) => T | Promise<T>): Promise<T> {
    if (rel === '') throw unsafe(raw, 'names the target directory itself');
    await this.parents(raw, parts);
    const fd = this.tree.dirPath(parts.slice(0, -1).join('/'));
    try {
      const name = parts[parts.length - 1]!;
      const at: At = { fd, name, procPath: `/proc/self/fd/${fd}/${name}` };
      return await fn(at, this.clear(raw, rel, at, wantDir));
    } finally {
      closeSync(fd);
    }
  }

  private async file(
    raw: string,
    parts: string[],
    rel: string,
    a: Attrs,
    data: AsyncIterator<Buffer>,
    sparse: SparseMap | null,
  ): Promise<void> {
    await this.at(raw, parts, rel, false, async (at) => {
      const fd = createFileAt(at, 0o600);
      const sink = fdSink(fd);
      try {
        this.bytes += await writeContent(sink, sparse, data, this.opts.signal);
        await this.chown(() => sink.chown(a.uid, a.gid));
        await sink.chmod(a.mode);
        this.xattrs(at.procPath, a.xattrs);
        setTimes(a, { fd }, at);
      } finally {
        closeSync(fd);
      }
    });
    this.files.add(rel);
    this.entries++;
  }

  private async directory(raw: string, parts: string[], rel: string, a: Attrs): Promise<void> {
    if (rel !== '') {
      await this.at(raw, parts, rel, true, (at, exists) => {
        if (!exists) native.mkdirat(at.fd, at.name, 0o700);
      });
    }
    this.dirs.add(rel);
    this.deferred.set(rel, a);
    this.entries++;
  }

  private async symlink(raw: string, parts: string[], rel: string, a: Attrs, target: string): Promise<void> {
    if (target === '' || target.includes('\0')) throw unsafe(raw, 'is a symlink with an empty or NUL-containing target');
    await this.at(raw, parts, rel, false, async (at) => {
      native.symlinkat(target, at.fd, at.name);
      await this.chown(async () => native.lchownat(at.fd, at.name, a.uid, a.gid));
      this.xattrs(at.procPath, a.xattrs);
      setTimes(a, null, at);
    });
    this.entries++;
  }

  private async hardlink(raw: string, parts: string[], rel: string, linkname: string): Promise<void> {
    const tparts = normalise(linkname, raw, 'hard link target');
    const trel = tparts.join('/');
    if (trel === '' || trel === rel) throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a file`);
    if (!this.files.has(trel)) {
      throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a regular file extracted earlier from this archive`);
    }
    await this.at(raw, parts, rel, false, (at) =>
      this.tree.withParent(tparts, (target) => {
        if (kindAt(target.fd, target.name) !== 'file') throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a regular file`);
        native.linkat(target.fd, target.name, at.fd, at.name);
      }),
    );
    this.files.add(rel);
    this.entries++;
  }

  private async special(raw: string, parts: string[], rel: string, a: Attrs, kind: 'p' | 'c' | 'b', major: number, minor: number): Promise<void> {
    const type = kind === 'p' ? C.S_IFIFO : kind === 'c' ? C.S_IFCHR : C.S_IFBLK;
    await this.at(raw, parts, rel, false, async (at) => {
      native.mknodat(at.fd, at.name, type | (a.mode & 0o777), major, minor);
      await this.chown(async () => native.lchownat(at.fd, at.name, a.uid, a.gid));
      await chmodNodeAt(at, a.mode);
      this.xattrs(at.procPath, a.xattrs);
      setTimes(a, null, at);
    });
    this.entries++;
  }

  private async chown(fn: () => Promise<void>): Promise<void> {
    if (!this.preserveOwner) return;
    try {
      await fn();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'EPERM' || code === 'EINVAL') && process.getuid?.() !== 0) {
        if (!this.ownerWarned) this.warn('cannot restore file owners (not running as root): files are owned by the current user');
        this.ownerWarned = true;
        return;
      }
      throw e;
    }
  }

  /** xattrs through `procPath` (a parent's descriptor and a name: the name itself is never followed). */
  private xattrs(procPath: string, list: Xattr[]): void {
    for (const x of list) {
      try {
        native.setXattr(procPath, x.name, x.value, 0);
      } catch (e) {
        this.xattrProblems.push(`xattr ${x.name}: ${oneLine((e as Error).message ?? String(e))}`);
      }
    }
  }

  /** Apply directory attributes (deepest first) and report aggregated warnings. */
  async finish(): Promise<void> {
    const dirs = [...this.deferred.entries()].sort((p, q) => depth(q[0]) - depth(p[0]));
    for (const [rel, a] of dirs) {
      let fd: number;
      try {
        fd = this.tree.open(rel, C.O_RDONLY | C.O_DIRECTORY);
      } catch (e) {
        throw new TsmError('EIO', `cannot set attributes of directory ${quote(rel || '.')}: ${oneLine((e as Error).message)}`, { cause: e });
      }
      try {
        const sink = fdSink(fd);
        await this.chown(() => sink.chown(a.uid, a.gid));
        await sink.chmod(a.mode);
        this.xattrs(`/proc/self/fd/${fd}/.`, a.xattrs);
        setTimes(a, { fd }, null);
      } finally {
        closeSync(fd);
      }
    }
    if (this.skipped.length > 0) {
      const eg = this.skipped.slice(0, 3).map(quote).join(', ');
      this.warn(`skipped ${this.skipped.length} device node(s) in the archive (e.g. ${eg}): device nodes are not created here`);
    }
    if (this.xattrProblems.length > 0) {
      this.warn(`${this.xattrProblems.length} extended attribute(s) not restored; first: ${this.xattrProblems[0]!}`);
    }
  }
}

// ---------------------------------------------------------------------------
// helpers

/** Split an archive name into safe components, or throw. '' components and '.' are dropped. */
function normalise(name: string, entry: string, what: 'name' | 'hard link target'): string[] {
  if (name.includes('\0')) throw unsafe(entry, `has a NUL byte in its ${what}`);
  if (name.startsWith('/')) throw unsafe(entry, `has an absolute ${what}`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe(entry, `has a ".." component in its ${what}`);
  return parts;
}

function unsafe(entry: string, why: string): TsmError {
  return new TsmError('EINVAL_ARG', `unsafe archive: entry ${quote(entry)} ${why}`, { fix: UNSAFE_FIX });
}

function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

function oneLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

function depth(rel: string): number {
  return rel === '' ? -1 : rel.split('/').length;
}

/** The validated TSMIGRATE.sparse map of a file entry, or null. */
function sparseMapOf(h: Header, raw: string): SparseMap | null {
  const v = h.pax?.[SPARSE_PAX_KEY];
  if (v === undefined) return null;
  try {
    return parseSparseMap(v, h.size ?? 0);
  } catch (e) {
    throw new TsmError('EINVAL_ARG', `unsupported archive: entry ${quote(raw)} has an invalid sparse map: ${oneLine((e as Error).message)}`, {
      fix: 'recreate the archive (tsmigrate pack)',
    });
  }
}

