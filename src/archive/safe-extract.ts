/**
 * Safe tar extraction into a directory.
 *
 * Archives come from untrusted places (image tarballs, checkpoint archives,
 * migration streams from the network), so every entry is checked before
 * anything is written for it:
 *
 *  - names are normalised ("./" and empty components dropped); absolute names,
 *    any ".." component and NUL bytes are refused;
 *  - no symlink is ever followed while creating a path: every parent component
 *    is lstat'ed inside the target and must be a real directory, files are
 *    opened with O_EXCL|O_NOFOLLOW after removing whatever was there;
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
 * nanosecond precision when the native addon is built. The archive entry for
 * the root ("./") sets the target directory's own owner, mode, xattrs, times.
 *
 * The first unsafe entry rejects the whole archive with
 * TsmError('EINVAL_ARG', 'unsafe archive: entry "X" ...'). Entries before it
 * have been written already: THE CALLER MUST REMOVE THE PARTIAL TARGET
 * DIRECTORY on failure (extract into a fresh temporary directory and rename it
 * into place on success, as the image store does).
 *
 * The target directory must not be modified by anyone else during extraction
 * (directories verified once are remembered).
 */
import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { execa } from 'execa';
import { TsmError } from '../errors/errors.js';
import { parseSparseMap, SPARSE_PAX_KEY, writeContent, type SparseMap } from './sparse.js';
import { decodeXattrPax, parsePaxTime, type TimeNs } from './xattr-pax.js';

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
}

export interface ExtractResult {
  /** Entries created (everything except `skipped`). */
  entries: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** Normalised names of entries that were not created (device nodes). */
  skipped: string[];
}

type PaxHeaders = Record<string, string>;
/** tar-stream's header; `type` may be anything for unknown typeflags, `pax` holds the PAX records. */
type Header = Omit<tar.Header, 'type' | 'pax'> & { type: string | null; pax?: PaxHeaders | null };

interface Attrs {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  /** Exact times from the PAX `mtime` (and `atime`, else = mtime) records, when present. */
  times: { atime: TimeNs; mtime: TimeNs } | null;
  xattrs: Xattr[];
}

interface Xattr {
  name: string;
  value: Buffer;
}

const UNSAFE_FIX = 'do not use this archive: it could write outside its directory; recreate it from a trusted source';

/** Extract a tar stream into `targetDir` (created if missing). See the module comment for the rules. */
export async function extractTar(
  input: NodeJS.ReadableStream | Readable,
  targetDir: string,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  await fs.mkdir(targetDir, { recursive: true });
  const root = await fs.realpath(targetDir);
  const x = new Extractor(root, opts);
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
    await pipeline(input as Readable, extract, opts.signal ? { signal: opts.signal } : {});
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
  private ownerWarned = false;
  private xattrProblems: string[] = [];

  constructor(
    private readonly root: string,
    private readonly opts: ExtractOptions,
  ) {
    this.preserveOwner = opts.preserveOwner ?? true;
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
      throw new TsmError('EIO', `cannot extract archive entry ${quote(raw)}: ${oneLine(err?.message ?? String(e))}`, {
        fix: `check free space and permissions under ${this.root}`,
        cause: e,
      });
    }
  }

  /** Make sure every parent of `parts` is a real directory inside the root, creating missing ones (0755). */
  private async parents(raw: string, parts: string[]): Promise<void> {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel === '' ? parts[i]! : `${rel}/${parts[i]!}`;
      if (this.dirs.has(rel)) continue;
      const abs = path.join(this.root, rel);
      const st = await lstatOrNull(abs);
      if (st === null) {
        await fs.mkdir(abs, 0o755);
        await fs.chmod(abs, 0o755);
      } else if (st.isSymbolicLink()) {
        throw unsafe(raw, `goes through the symlink ${quote(rel)}`);
      } else if (!st.isDirectory()) {
        throw unsafe(raw, `has a parent ${quote(rel)} that is not a directory`);
      }
      this.dirs.add(rel);
    }
  }

  /**
   * Remove a non-directory already at `abs` (tar overwrite semantics; never
   * follows it). Returns true when a directory is already there.
   */
  private async clear(raw: string, rel: string, abs: string, wantDir: boolean): Promise<boolean> {
    const st = await lstatOrNull(abs);
    if (st === null) return false;
    if (st.isDirectory()) {
      if (wantDir) return true;
      throw new TsmError('EINVAL_ARG', `unsupported archive: entry ${quote(raw)} would replace a directory`, {
        fix: 'recreate the archive without conflicting entries',
      });
    }
    await fs.unlink(abs);
    this.files.delete(rel);
    return false;
  }

  private async prepare(raw: string, parts: string[], rel: string, wantDir: boolean): Promise<{ abs: string; exists: boolean }> {
    if (rel === '' && !wantDir) throw unsafe(raw, 'names the target directory itself');
    await this.parents(raw, parts);
    const abs = rel === '' ? this.root : path.join(this.root, rel);
    const exists = rel === '' ? true : await this.clear(raw, rel, abs, wantDir);
    return { abs, exists };
  }

  private async file(
    raw: string,
    parts: string[],
    rel: string,
    a: Attrs,
    data: AsyncIterator<Buffer>,
    sparse: SparseMap | null,
  ): Promise<void> {
    const { abs } = await this.prepare(raw, parts, rel, false);
    const fh = await fs.open(abs, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    try {
      this.bytes += await writeContent(fh, sparse, data, this.opts.signal);
      await this.chown(() => fh.chown(a.uid, a.gid));
      await fh.chmod(a.mode);
      await this.xattrs(abs, a.xattrs);
      await setTimes(a, { fd: fh.fd }, () => fh.utimes(a.mtime, a.mtime));
    } finally {
      await fh.close();
    }
    this.files.add(rel);
    this.entries++;
  }

  private async directory(raw: string, parts: string[], rel: string, a: Attrs): Promise<void> {
    const { abs, exists } = await this.prepare(raw, parts, rel, true);
    if (!exists) await fs.mkdir(abs, 0o700);
    this.dirs.add(rel);
    this.deferred.set(rel, a);
    this.entries++;
  }

  private async symlink(raw: string, parts: string[], rel: string, a: Attrs, target: string): Promise<void> {
    if (target === '' || target.includes('\0')) throw unsafe(raw, 'is a symlink with an empty or NUL-containing target');
    const { abs } = await this.prepare(raw, parts, rel, false);
    await fs.symlink(target, abs);
    await this.chown(() => fs.lchown(abs, a.uid, a.gid));
    await this.xattrs(abs, a.xattrs);
    await setTimes(a, { path: abs }, () => fs.lutimes(abs, a.mtime, a.mtime));
    this.entries++;
  }

  private async hardlink(raw: string, parts: string[], rel: string, linkname: string): Promise<void> {
    const tparts = normalise(linkname, raw, 'hard link target');
    const trel = tparts.join('/');
    if (trel === '' || trel === rel) throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a file`);
    if (!this.files.has(trel)) {
      throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a regular file extracted earlier from this archive`);
    }
    const tabs = path.join(this.root, trel);
    const st = await lstatOrNull(tabs);
    if (st === null || !st.isFile()) throw unsafe(raw, `is a hard link to ${quote(linkname)}, which is not a regular file`);
    const { abs } = await this.prepare(raw, parts, rel, false);
    await fs.link(tabs, abs);
    this.files.add(rel);
    this.entries++;
  }

  private async special(raw: string, parts: string[], rel: string, a: Attrs, kind: 'p' | 'c' | 'b', major: number, minor: number): Promise<void> {
    const { abs } = await this.prepare(raw, parts, rel, false);
    await makeNode(abs, kind, a.mode & 0o777, major, minor);
    await this.chown(() => fs.lchown(abs, a.uid, a.gid));
    // chmod on the path is safe: we just created a non-symlink node here.
    await fs.chmod(abs, a.mode);
    await this.xattrs(abs, a.xattrs);
    await setTimes(a, { path: abs }, () => fs.lutimes(abs, a.mtime, a.mtime));
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

  private async xattrs(abs: string, list: Xattr[]): Promise<void> {
    if (list.length === 0) return;
    const problems = await setXattrs(abs, list);
    this.xattrProblems.push(...problems);
  }

  /** Apply directory attributes (deepest first) and report aggregated warnings. */
  async finish(): Promise<void> {
    const dirs = [...this.deferred.entries()].sort((p, q) => depth(q[0]) - depth(p[0]));
    for (const [rel, a] of dirs) {
      const abs = rel === '' ? this.root : path.join(this.root, rel);
      let fh;
      try {
        fh = await fs.open(abs, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
      } catch (e) {
        throw new TsmError('EIO', `cannot set attributes of directory ${quote(rel || '.')}: ${oneLine((e as Error).message)}`, { cause: e });
      }
      try {
        await this.chown(() => fh.chown(a.uid, a.gid));
        await fh.chmod(a.mode);
        await this.xattrs(abs, a.xattrs);
        await setTimes(a, { fd: fh.fd }, () => fh.utimes(a.mtime, a.mtime));
      } finally {
        await fh.close();
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

async function lstatOrNull(p: string) {
  try {
    return await fs.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function attrsOf(h: Header, problem: (msg: string) => void): Attrs {
  const pax = h.pax ?? {};
  const int = (v: string | undefined): number | undefined => {
    if (v === undefined || !/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  };
  let mtime = h.mtime instanceof Date ? h.mtime : new Date(0);
  const paxMtime = pax['mtime'];
  if (paxMtime !== undefined && /^-?\d+(\.\d+)?$/.test(paxMtime)) mtime = new Date(Number(paxMtime) * 1000);
  if (Number.isNaN(mtime.getTime())) mtime = new Date(0);
  const exactM = paxMtime === undefined ? null : parsePaxTime(paxMtime);
  const paxAtime = pax['atime'];
  const exactA = paxAtime === undefined ? null : parsePaxTime(paxAtime);
  return {
    mode: (h.mode ?? 0o644) & 0o7777,
    uid: int(pax['uid']) ?? h.uid ?? 0,
    gid: int(pax['gid']) ?? h.gid ?? 0,
    mtime,
    times: exactM === null ? null : { mtime: exactM, atime: exactA ?? exactM },
    xattrs: paxXattrs(pax, problem),
  };
}

/**
 * Extended attributes recorded in PAX headers:
 *  - TSMIGRATE.xattr.ENCODED-NAME=BASE64 (tsmigrate, xattr-pax.ts): exact;
 *    wins over the two below for the same name.
 *  - SCHILY.xattr.NAME=VALUE (GNU tar, star): tar-stream decodes the value as
 *    UTF-8, so a binary value (e.g. security.capability) cannot be recovered
 *    exactly; such values are reported, not written.
 *  - LIBARCHIVE.xattr.URLENCODED-NAME=BASE64 (bsdtar): exact.
 */
function paxXattrs(pax: PaxHeaders, problem: (msg: string) => void): Xattr[] {
  const ours = decodeXattrPax(pax, problem);
  const have = new Set(ours.map((x) => x.name));
  const out: Xattr[] = [];
  for (const [key, value] of Object.entries(pax)) {
    if (key.startsWith('SCHILY.xattr.')) {
      const name = key.slice('SCHILY.xattr.'.length);
      if (value.includes('\uFFFD')) {
        problem(`xattr ${name} has a binary value that cannot be read from this archive`);
        continue;
      }
      out.push({ name, value: Buffer.from(value, 'utf8') });
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      let name: string;
      try {
        name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      } catch {
        problem(`xattr key ${key} is not valid`);
        continue;
      }
      out.push({ name, value: Buffer.from(value, 'base64') });
    }
  }
  return [...out.filter((x) => !have.has(x.name)), ...ours];
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

/**
 * Set atime/mtime: with nanosecond precision through the native addon when
 * the entry has exact PAX times, else (or without the addon) with `fallback`.
 */
async function setTimes(a: Attrs, where: { fd: number } | { path: string }, fallback: () => Promise<void>): Promise<void> {
  const t = a.times;
  if (t !== null) {
    const native = await loadNative();
    const args: TimesArgs = [t.atime.sec, t.atime.nsec, t.mtime.sec, t.mtime.nsec];
    try {
      if ('fd' in where && native.futimesNs) {
        await native.futimesNs(where.fd, ...args);
        return;
      }
      if ('path' in where && native.lutimesNs) {
        await native.lutimesNs(where.path, ...args);
        return;
      }
    } catch (e) {
      // The addon is not built / too old: fall back to Node's (microsecond) utimes.
      if ((e as { code?: unknown }).code !== 'ENATIVE') throw e;
    }
  }
  await fallback();
}

// ---------------------------------------------------------------------------
// optional native addon (src/native/native.ts), loaded lazily

type TimesArgs = [atimeSec: bigint, atimeNsec: number, mtimeSec: bigint, mtimeNsec: number];

interface NativeOps {
  mknod?: (path: string, mode: number, major: number, minor: number) => unknown;
  lsetxattr?: (path: string, name: string, value: Buffer, flags: number) => unknown;
  lutimesNs?: (path: string, ...t: TimesArgs) => unknown;
  futimesNs?: (fd: number, ...t: TimesArgs) => unknown;
}

let nativeOps: Promise<NativeOps> | undefined;

function loadNative(): Promise<NativeOps> {
  nativeOps ??= (async (): Promise<NativeOps> => {
    try {
      // A variable specifier: the module may not exist (or the addon may not be built).
      const spec = '../native/native.js';
      const mod = (await import(spec)) as Record<string, unknown>;
      const fn = (...names: string[]): ((...args: never[]) => unknown) | undefined => {
        for (const n of names) {
          const f = mod[n];
          if (typeof f === 'function') return f as (...args: never[]) => unknown;
        }
        return undefined;
      };
      return {
        mknod: fn('mknod') as NativeOps['mknod'],
        lsetxattr: fn('lsetxattr', 'setXattr', 'lsetXattr') as NativeOps['lsetxattr'],
        lutimesNs: fn('lutimesNs') as NativeOps['lutimesNs'],
        futimesNs: fn('futimesNs') as NativeOps['futimesNs'],
      };
    } catch {
      return {};
    }
  })();
  return nativeOps;
}

/** Set xattrs on `abs` without following symlinks. Returns problems (never throws). */
async function setXattrs(abs: string, list: Xattr[]): Promise<string[]> {
  const native = await loadNative();
  if (!native.lsetxattr) {
    return list.map((x) => `xattr ${x.name}: the native addon is not available (build it with npm run build:native)`);
  }
  const problems: string[] = [];
  for (const x of list) {
    try {
      await native.lsetxattr(abs, x.name, x.value, 0);
    } catch (e) {
      problems.push(`xattr ${x.name}: ${oneLine((e as Error).message ?? String(e))}`);
    }
  }
  return problems;
}

/** mkfifo / mknod at `abs`: native addon when available, else the coreutils commands. */
async function makeNode(abs: string, kind: 'p' | 'c' | 'b', perm: number, major: number, minor: number): Promise<void> {
  const native = await loadNative();
  const type = kind === 'p' ? C.S_IFIFO : kind === 'c' ? C.S_IFCHR : C.S_IFBLK;
  if (native.mknod) {
    try {
      await native.mknod(abs, type | perm, major, minor);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'EPERM' || code === 'ENOENT') throw e;
      // Anything else (addon not built, different wrapper signature): fall back.
    }
  }
  const m = perm.toString(8);
  if (kind === 'p') await execa('mkfifo', ['-m', m, '--', abs]);
  else await execa('mknod', ['-m', m, '--', abs, kind, String(major), String(minor)]);
}
