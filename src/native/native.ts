/**
 * Typed wrappers around the tsm_native N-API addon (native/addon/tsm_native.c):
 * the few Linux syscalls Node does not expose. This is the only module that
 * loads the addon; everything else imports from here.
 *
 * All calls are synchronous (they are single fast syscalls). A failing
 * syscall throws an Error shaped like Node's fs errors — `code` ('EPERM'),
 * `errno` (-1), `syscall` ('mount'), `path` — see `isErrnoError`. Bad
 * argument types throw TypeError (a path with a NUL byte included), bad
 * numbers RangeError. The addon is loaded lazily on first use; if it is not
 * built, calls throw TsmError('ENATIVE').
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors/errors.js';

/** Linux constants (identical on every Linux architecture Node runs on). */
export const constants = Object.freeze({
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_NOEXEC: 8,
  MS_SYNCHRONOUS: 16,
  MS_REMOUNT: 32,
  MS_MANDLOCK: 64,
  MS_DIRSYNC: 128,
  MS_NOSYMFOLLOW: 256,
  MS_NOATIME: 1024,
  MS_NODIRATIME: 2048,
  MS_BIND: 4096,
  MS_MOVE: 8192,
  MS_REC: 16384,
  MS_SILENT: 32768,
  MS_UNBINDABLE: 1 << 17,
  MS_PRIVATE: 1 << 18,
  MS_SLAVE: 1 << 19,
  MS_SHARED: 1 << 20,
  MS_RELATIME: 1 << 21,
  MS_STRICTATIME: 1 << 24,
  MS_LAZYTIME: 1 << 25,
  MNT_FORCE: 1,
  MNT_DETACH: 2,
  MNT_EXPIRE: 4,
  UMOUNT_NOFOLLOW: 8,
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
  XATTR_CREATE: 1,
  XATTR_REPLACE: 2,
  CLONE_NEWTIME: 0x00000080,
  CLONE_NEWNS: 0x00020000,
  CLONE_NEWCGROUP: 0x02000000,
  CLONE_NEWUTS: 0x04000000,
  CLONE_NEWIPC: 0x08000000,
  CLONE_NEWUSER: 0x10000000,
  CLONE_NEWPID: 0x20000000,
  CLONE_NEWNET: 0x40000000,
  UTIME_NOW: (1 << 30) - 1,
  UTIME_OMIT: (1 << 30) - 2,
} as const);

export type NativeConstants = typeof constants;

/** What the addon throws when a syscall fails (shaped like Node's fs errors). */
export interface ErrnoError extends Error {
  /** errno name, e.g. 'EPERM'. */
  code: string;
  /** negative errno, e.g. -1. */
  errno: number;
  /** e.g. 'mount', 'lgetxattr', 'utimensat'. */
  syscall: string;
  /** the path operated on (absent for setns/unshare). */
  path?: string;
}

/** True for errors thrown by a failed syscall (native or Node fs), optionally with a given code. */
export function isErrnoError(e: unknown, code?: string): e is ErrnoError {
  if (!(e instanceof Error)) return false;
  const x = e as Partial<ErrnoError>;
  return (
    typeof x.code === 'string' &&
    typeof x.errno === 'number' &&
    typeof x.syscall === 'string' &&
    (code === undefined || x.code === code)
  );
}

// ---------------------------------------------------------------------------
// loading

interface Binding {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  mknod(path: string, mode: number, major: number, minor: number): void;
  lgetxattr(path: string, name: string): Buffer | null;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  setns(fd: number, nstype: number): void;
  unshare(flags: number): void;
  lutimesNs(path: string, atimeSec: number | bigint, atimeNsec: number, mtimeSec: number | bigint, mtimeNsec: number): void;
  futimesNs(fd: number, atimeSec: number | bigint, atimeNsec: number, mtimeSec: number | bigint, mtimeNsec: number): void;
  seekData(fd: number, offset: number): number | null;
  seekHole(fd: number, offset: number): number | null;
  mallocTune(trimThreshold: number, mmapThreshold: number, topPad: number): boolean;
  memPrefault(bytes: number): PrefaultHandle;
  memRelease(handle: PrefaultHandle, bytes: number): number;
  setPipeSize(fd: number, bytes: number): number;
  allocate(fd: number, offset: number, bytes: number): void;
  bpfDeviceProgLoad(insns: Buffer, license: string): number;
  bpfDeviceProgQuery(cgroupFd: number): BpfDeviceProgQuery;
  bpfDeviceProgAttach(cgroupFd: number, progFd: number, replaceFd: number | null): void;
  bpfDeviceProgDetach(cgroupFd: number, progFd: number): void;
  bpfProgFdById(id: number): number;
  bpfProgId(progFd: number): number;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  mkdirat(dirfd: number, name: string, mode: number): void;
  symlinkat(target: string, dirfd: number, name: string): void;
  linkat(olddirfd: number, oldname: string, newdirfd: number, newname: string): void;
  unlinkat(dirfd: number, name: string, flags: number): void;
  mknodat(dirfd: number, name: string, mode: number, major: number, minor: number): void;
  lchownat(dirfd: number, name: string, uid: number, gid: number): void;
  lutimensat(dirfd: number, name: string, atimeSec: number | bigint, atimeNsec: number, mtimeSec: number | bigint, mtimeNsec: number): void;
  lstatat(dirfd: number, name: string): number | null;
  constants: Record<string, number>;
}

const ADDON_REL = 'native/build/Release/tsm_native.node';
const require = createRequire(import.meta.url);
let binding: Binding | undefined;

/** Where the addon may be: relative to dist/src/native/ (normal) or src/native/. */
function addonCandidates(): string[] {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return [path.resolve(here, '../../..', ADDON_REL), path.resolve(here, '../..', ADDON_REL)];
}

function load(): Binding {
  if (binding !== undefined) return binding;
  const file = addonCandidates().find((f) => existsSync(f));
  if (file === undefined) {
    throw new TsmError('ENATIVE', 'the native addon is not built (native/build/Release/tsm_native.node missing)', {
      fix: 'run scripts/setup.sh or npm run build:native',
    });
  }
  let mod: Binding;
  try {
    mod = require(file) as Binding;
  } catch (e) {
    throw new TsmError('ENATIVE', `the native addon failed to load (${file}): ${(e as Error).message}`, {
      fix: 'rebuild it: npm run build:native',
      cause: e,
    });
  }
  for (const [k, v] of Object.entries(constants)) {
    if (mod.constants[k] !== v) {
      throw new TsmError('ENATIVE', `the native addon disagrees on ${k} (${String(mod.constants[k])} != ${v})`, {
        fix: 'rebuild it: npm run build:native',
      });
    }
  }
  binding = mod;
  return mod;
}

/**
 * Keep freed heap memory in the process instead of giving it back to the
 * kernel at once (glibc trims the heap top past 128 KiB, and serves anything
 * over 128 KiB-32 MiB by mmap), so that a transfer's stream of short-lived
 * Buffers reuses pages instead of faulting fresh ones in. On these hosts a page
 * fault costs ~15 us (a paravirtualised guest): the peer's agent spent 1.7 s of
 * CPU on 290 MB of images with the defaults, 0.8-1.0 s with this. Bounded: at
 * most 256 MiB of free heap is kept. Best effort: false (and nothing changed
 * beyond what glibc took) without the addon or with another libc.
 */
export function tuneMallocForStreaming(): boolean {
  try {
    const b = load();
    return typeof b.mallocTune === 'function' && b.mallocTune(256 << 20, 32 << 20, 64 << 20);
  } catch {
    return false;
  }
}

/** Anonymous memory faulted in by memPrefault; unmapped when collected. */
export type PrefaultHandle = { readonly __prefault: unique symbol };

/**
 * `bytes` of anonymous memory, faulted in now (MAP_POPULATE), or undefined
 * when the addon is missing or the kernel refuses (ENOMEM): pre-faulting is
 * an optimisation, never a reason to fail.
 */
export function prefaultMemory(bytes: number): PrefaultHandle | undefined {
  try {
    const b = load();
    return typeof b.memPrefault === 'function' ? b.memPrefault(bytes) : undefined;
  } catch {
    return undefined;
  }
}

/** Give the last `bytes` of a prefaulted region back to the kernel; what is left of it. */
export function releaseMemory(handle: PrefaultHandle, bytes: number): number {
  return load().memRelease(handle, bytes);
}

/**
 * Make the pipe on `fd` hold `bytes` (F_SETPIPE_SZ); its new capacity, or
 * undefined when `fd` is not a pipe, the addon is missing or the kernel refuses.
 */
export function widenPipe(fd: number, bytes: number): number | undefined {
  try {
    const b = load();
    return typeof b.setPipeSize === 'function' ? b.setPipeSize(fd, bytes) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Allocate `bytes` of the file on `fd` from `offset` (fallocate(2), mode 0): true
 * when done; false when the addon is missing or the kernel refuses (no
 * space, a filesystem without fallocate). An optimisation, never a failure.
 */
export function allocateFile(fd: number, offset: number, bytes: number): boolean {
  try {
    const b = load();
    if (typeof b.allocate !== 'function') return false;
    b.allocate(fd, offset, bytes);
    return true;
  } catch {
    return false;
  }
}

/** True if the addon is built and loads. Never throws. */
export function nativeAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// mounts

/** mount(2). `flags` are MS_* constants; `data` is the fs-specific option string. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number = 0,
  data: string | null = null,
): void {
  load().mount(source, target, fstype, flags, data);
}

export interface UmountOptions {
  /** MNT_DETACH: lazy unmount, succeeds even if busy. */
  detach?: boolean;
  /** MNT_FORCE. */
  force?: boolean;
  /** UMOUNT_NOFOLLOW: don't follow a symlink at `target`. */
  noFollow?: boolean;
}

/** umount2(2). Throws EINVAL if `target` is not a mount point. */
export function umount(target: string, opts: UmountOptions = {}): void {
  let flags = 0;
  if (opts.detach) flags |= constants.MNT_DETACH;
  if (opts.force) flags |= constants.MNT_FORCE;
  if (opts.noFollow) flags |= constants.UMOUNT_NOFOLLOW;
  load().umount2(target, flags);
}

export interface OverlayOptions {
  /** Lower layers, topmost first (as in `lowerdir=top:...:bottom`). At least one. */
  lower: readonly string[];
  /** Upper (writable) layer; give together with `work`, or omit both for a read-only overlay. */
  upper?: string;
  /** Work dir: empty, on the same filesystem as `upper`. */
  work?: string;
  /** Mount point. */
  target: string;
  /** Extra raw overlay options, e.g. ['index=off', 'xino=off']. Not escaped. */
  options?: readonly string[];
  /** MS_* flags. */
  flags?: number;
}

/** Legacy mount(2) copies at most one page of option data. */
const MAX_MOUNT_DATA = 4095;

/** Escape a path for overlayfs options: '\', ':' and ',' get a backslash. */
function escapeOverlayPath(p: string): string {
  return p.replace(/[\\:,]/g, (c) => `\\${c}`);
}

/**
 * The overlayfs option string for `opts`:
 * `lowerdir=a:b,upperdir=u,workdir=w[,extra...]`. Paths are made absolute
 * and escaped. Throws TsmError('EINVAL_ARG') on bad input.
 */
export function overlayData(opts: Omit<OverlayOptions, 'target' | 'flags'>): string {
  if (opts.lower.length === 0) {
    throw new TsmError('EINVAL_ARG', 'an overlay mount needs at least one lower layer', {
      fix: 'pass the image layers as `lower`',
    });
  }
  if ((opts.upper === undefined) !== (opts.work === undefined)) {
    throw new TsmError('EINVAL_ARG', 'an overlay mount needs both upper and work dirs, or neither', {
      fix: 'pass both `upper` and `work` (on the same filesystem)',
    });
  }
  const all = [...opts.lower, ...(opts.upper === undefined ? [] : [opts.upper]), ...(opts.work === undefined ? [] : [opts.work])];
  for (const p of all) {
    if (p === '' || p.includes('\0')) {
      throw new TsmError('EINVAL_ARG', `invalid overlay layer path ${JSON.stringify(p)}`, {
        fix: 'use non-empty paths without NUL bytes',
      });
    }
  }
  const esc = (p: string): string => escapeOverlayPath(path.resolve(p));
  const parts = [`lowerdir=${opts.lower.map(esc).join(':')}`];
  if (opts.upper !== undefined && opts.work !== undefined) {
    parts.push(`upperdir=${esc(opts.upper)}`, `workdir=${esc(opts.work)}`);
  }
  parts.push(...(opts.options ?? []));
  const data = parts.join(',');
  if (Buffer.byteLength(data) > MAX_MOUNT_DATA) {
    throw new TsmError(
      'EINVAL_ARG',
      `overlay mount options are ${Buffer.byteLength(data)} bytes; the kernel accepts at most ${MAX_MOUNT_DATA}`,
      { fix: 'use fewer lower layers or shorter layer paths' },
    );
  }
  return data;
}

/** Mount an overlayfs at `opts.target`. */
export function mountOverlay(opts: OverlayOptions): void {
  mount('overlay', opts.target, 'overlay', opts.flags ?? 0, overlayData(opts));
}

/** One line of /proc/self/mountinfo (see proc(5)). */
export interface MountInfo {
  mountId: number;
  parentId: number;
  /** "major:minor" of st_dev for files on this mount. */
  dev: string;
  /** Root of the mount within its filesystem. */
  root: string;
  mountPoint: string;
  mountOptions: string;
  fstype: string;
  source: string;
  superOptions: string;
}

/** Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse /proc/self/mountinfo (this process's mount namespace). */
export function readMountInfo(file: string = '/proc/self/mountinfo'): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      mountId: Number(f[0]),
      parentId: Number(f[1]),
      dev: f[2] ?? '',
      root: unescapeMountinfo(f[3] ?? ''),
      mountPoint: unescapeMountinfo(f[4] ?? ''),
      mountOptions: f[5] ?? '',
      fstype: f[sep + 1] ?? '',
      source: unescapeMountinfo(f[sep + 2] ?? ''),
      superOptions: f[sep + 3] ?? '',
    });
  }
  return out;
}

/**
 * True if `p` (after resolving symlinks) is a mount point in this mount
 * namespace; false if it does not exist. Uses /proc/self/mountinfo, so bind
 * mounts within one filesystem count too.
 */
export function isMountpoint(p: string): boolean {
  let real: string;
  try {
    real = realpathSync.native(p);
  } catch (e) {
    if (isErrnoError(e, 'ENOENT') || isErrnoError(e, 'ENOTDIR')) return false;
    throw e;
  }
  return readMountInfo().some((m) => m.mountPoint === real);
}

// ---------------------------------------------------------------------------
// files

/** mknod(2). `mode` includes the file type (constants.S_IFCHR, S_IFBLK, S_IFIFO, ...). */
export function mknod(path: string, mode: number, major: number = 0, minor: number = 0): void {
  load().mknod(path, mode, major, minor);
}

/** lgetxattr(2): the value, or null if the attribute is absent. Does not follow symlinks. */
export function getXattr(path: string, name: string): Buffer | null {
  return load().lgetxattr(path, name);
}

/** lsetxattr(2). `flags`: 0, constants.XATTR_CREATE or constants.XATTR_REPLACE. Strings are UTF-8. */
export function setXattr(path: string, name: string, value: Uint8Array | string, flags: number = 0): void {
  const buf =
    typeof value === 'string'
      ? Buffer.from(value, 'utf8')
      : Buffer.isBuffer(value)
        ? value
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  load().lsetxattr(path, name, buf, flags);
}

/** llistxattr(2): attribute names (only those this process may see). */
export function listXattrs(path: string): string[] {
  return load().llistxattr(path);
}

/** lremovexattr(2). Throws ENODATA if absent. */
export function removeXattr(path: string, name: string): void {
  load().lremovexattr(path, name);
}

/**
 * utimensat(AT_FDCWD, path, ..., AT_SYMLINK_NOFOLLOW): set atime/mtime with
 * nanosecond precision, on a symlink itself if `path` is one. A nsec value may
 * be constants.UTIME_NOW or constants.UTIME_OMIT.
 */
export function lutimesNs(
  path: string,
  atimeSec: number | bigint,
  atimeNsec: number,
  mtimeSec: number | bigint,
  mtimeNsec: number,
): void {
  load().lutimesNs(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
}

/**
 * futimens(2): like lutimesNs, on an open file descriptor (no path lookup).
 * The addon must be recent enough (throws TsmError('ENATIVE') otherwise).
 */
export function futimesNs(
  fd: number,
  atimeSec: number | bigint,
  atimeNsec: number,
  mtimeSec: number | bigint,
  mtimeNsec: number,
): void {
  fn('futimesNs')(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
}

/**
 * lseek(fd, offset, SEEK_DATA): the offset of the first byte of data at or
 * after `offset`, or null (ENXIO) when there is none (only a hole up to EOF,
 * or `offset` >= the file size). Moves the file offset.
 */
export function seekData(fd: number, offset: number): number | null {
  return fn('seekData')(fd, offset);
}

/**
 * lseek(fd, offset, SEEK_HOLE): the offset of the first hole at or after
 * `offset` (the file size counts as a hole at EOF), or null (ENXIO) when
 * `offset` >= the file size. Moves the file offset. Filesystems without hole
 * support report the whole file as data (the result is the file size).
 */
export function seekHole(fd: number, offset: number): number | null {
  return fn('seekHole')(fd, offset);
}

type Optional =
  | 'futimesNs' | 'seekData' | 'seekHole' | 'bpfDeviceProgLoad' | 'bpfDeviceProgQuery' | 'bpfDeviceProgAttach'
  | 'bpfDeviceProgDetach' | 'bpfProgFdById' | 'bpfProgId' | 'openat2' | 'mkdirat' | 'symlinkat' | 'linkat'
  | 'unlinkat' | 'mknodat' | 'lchownat' | 'lutimensat' | 'lstatat';

/** A binding function that may be missing from an addon built before it was added. */
function fn<K extends Optional>(name: K): Binding[K] {
  const b = load();
  const f = b[name] as Binding[K] | undefined;
  if (typeof f !== 'function') {
    throw new TsmError('ENATIVE', `the native addon is too old (no ${name})`, { fix: 'rebuild it: npm run build:native' });
  }
  return f;
}

// ---------------------------------------------------------------------------
// namespaces — caution: these act on the calling (main) thread only; libuv's
// thread pool (async fs, dns, zlib) stays in the old namespaces. Node is
// always multithreaded, so the kernel refuses setns() into a mount namespace
// and unshare(CLONE_NEWUSER) with EINVAL (unshare(CLONE_NEWNS) works, for the
// main thread only). Do namespace work in the shim; these are for probes.

/** setns(2) on the calling thread. */
export function setns(fd: number, nstype: number = 0): void {
  load().setns(fd, nstype);
}

/** unshare(2) on the calling thread. */
export function unshare(flags: number): void {
  load().unshare(flags);
}

// ---------------------------------------------------------------------------
// cgroup device programs (bpf(2)). The addon fixes the program type
// (BPF_PROG_TYPE_CGROUP_DEVICE) and the attach type (BPF_CGROUP_DEVICE, with
// BPF_F_ALLOW_MULTI); fds returned are close-on-exec and the caller closes
// them. Failures carry `syscall` 'bpf(BPF_PROG_LOAD)', 'bpf(BPF_PROG_ATTACH)', ...

/** BPF_F_ALLOW_MULTI, as BPF_PROG_QUERY reports a cgroup's attach mode. */
export const BPF_F_ALLOW_MULTI = 2;

/** What BPF_PROG_QUERY reports for one cgroup (programs attached to it, not inherited ones). */
export interface BpfDeviceProgQuery {
  /** The cgroup's attach mode: 0 (none or exclusive), 1 (BPF_F_ALLOW_OVERRIDE) or BPF_F_ALLOW_MULTI. */
  attachFlags: number;
  progIds: number[];
}

/** A load failure: the kernel verifier's log, when it gave one. */
export interface BpfLoadError extends ErrnoError {
  verifierLog?: string;
}

/** BPF_PROG_LOAD of a cgroup device program (`insns`: 8-byte instructions, host byte order); its fd. */
export function bpfDeviceProgLoad(insns: Buffer, license: string): number {
  return fn('bpfDeviceProgLoad')(insns, license);
}

/** BPF_PROG_QUERY for BPF_CGROUP_DEVICE on an O_DIRECTORY fd of a cgroup v2 dir. */
export function bpfDeviceProgQuery(cgroupFd: number): BpfDeviceProgQuery {
  return fn('bpfDeviceProgQuery')(cgroupFd);
}

/** BPF_PROG_ATTACH with BPF_F_ALLOW_MULTI; with `replaceFd` also BPF_F_REPLACE (that program is swapped atomically). */
export function bpfDeviceProgAttach(cgroupFd: number, progFd: number, replaceFd?: number): void {
  fn('bpfDeviceProgAttach')(cgroupFd, progFd, replaceFd ?? null);
}

/** BPF_PROG_DETACH of one device program from a cgroup. */
export function bpfDeviceProgDetach(cgroupFd: number, progFd: number): void {
  fn('bpfDeviceProgDetach')(cgroupFd, progFd);
}

/** BPF_PROG_GET_FD_BY_ID: an fd for a loaded program. */
export function bpfProgFdById(id: number): number {
  return fn('bpfProgFdById')(id);
}

/** BPF_OBJ_GET_INFO_BY_FD: the id of the program on `progFd`. */
export function bpfProgId(progFd: number): number {
  return fn('bpfProgId')(progFd);
}

// ---------------------------------------------------------------------------
// beneath a directory fd (src/archive/beneath.ts). `name` arguments are one
// path component (no '/', not '.' or '..'; the addon refuses others).

/** openat2 RESOLVE_* flags (linux/openat2.h) and the open flags used with them. */
export const resolve = Object.freeze({
  RESOLVE_NO_XDEV: 0x01,
  RESOLVE_NO_MAGICLINKS: 0x02,
  RESOLVE_NO_SYMLINKS: 0x04,
  RESOLVE_BENEATH: 0x08,
  O_PATH: 0o10000000,
  AT_REMOVEDIR: 0x200,
} as const);

/** openat2(2) (O_CLOEXEC added): an fd the caller closes. */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolveFlags: number): number {
  return fn('openat2')(dirfd, path, flags, mode, resolveFlags);
}

/** mkdirat(2). */
export function mkdirat(dirfd: number, name: string, mode: number): void {
  fn('mkdirat')(dirfd, name, mode);
}

/** symlinkat(2): `name` in `dirfd` pointing at `target` (never followed here). */
export function symlinkat(target: string, dirfd: number, name: string): void {
  fn('symlinkat')(target, dirfd, name);
}

/** linkat(2) without AT_SYMLINK_FOLLOW. */
export function linkat(olddirfd: number, oldname: string, newdirfd: number, newname: string): void {
  fn('linkat')(olddirfd, oldname, newdirfd, newname);
}

/** unlinkat(2); `flags` 0 or resolve.AT_REMOVEDIR. */
export function unlinkat(dirfd: number, name: string, flags: number = 0): void {
  fn('unlinkat')(dirfd, name, flags);
}

/** mknodat(2). `mode` includes the file type. */
export function mknodat(dirfd: number, name: string, mode: number, major: number = 0, minor: number = 0): void {
  fn('mknodat')(dirfd, name, mode, major, minor);
}

/** fchownat(2) with AT_SYMLINK_NOFOLLOW. */
export function lchownat(dirfd: number, name: string, uid: number, gid: number): void {
  fn('lchownat')(dirfd, name, uid, gid);
}

/** utimensat(2) with AT_SYMLINK_NOFOLLOW, nanosecond times. */
export function lutimensat(dirfd: number, name: string, atimeSec: number | bigint, atimeNsec: number, mtimeSec: number | bigint, mtimeNsec: number): void {
  fn('lutimensat')(dirfd, name, atimeSec, atimeNsec, mtimeSec, mtimeNsec);
}

/** fstatat(2) with AT_SYMLINK_NOFOLLOW: st_mode, or null when `name` does not exist. */
export function lstatat(dirfd: number, name: string): number | null {
  return fn('lstatat')(dirfd, name);
}
