/**
 * CRIU command lines from typed requests (the options runc hands CRIU, as
 * command-line flags). Pure: no I/O. The result is an argument array that
 * starts with the subcommand and is run without a shell:
 * `execa(criu.path, dumpArgv(req))`. Bad input throws TsmError EINVAL_ARG.
 */
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

export type CriuVerbosity = 0 | 1 | 2 | 3 | 4;
export type ManageCgroupsMode = 'soft' | 'full' | 'strict' | 'ignore';

export interface DumpRequest {
  /** Root of the tree to dump (it must lead its session unless shellJob). */
  pid: number;
  /** Absolute; must exist (CRIU does not create it). */
  imagesDir: string;
  /** Absolute; where CRIU puts the log and its other files (default: imagesDir). */
  workDir?: string;
  /** A plain file name inside workDir/imagesDir; default 'dump.log'. */
  logFile?: string;
  /** Default 4 (debug: what the failure explanations need). */
  verbosity?: CriuVerbosity;
  /** Keep the tree running after the dump (ignored for preDump, which always does). */
  leaveRunning: boolean;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  /** Absolute path of the (v1 freezer or v2) cgroup to freeze the tree with. */
  freezeCgroup?: string;
  manageCgroups?: ManageCgroupsMode;
  /** Passed as --external each, e.g. 'veth[eth0]:tsm-ab12'. */
  externals?: string[];
  extUnixSk?: boolean;
  shellJob?: boolean;
  /** Soft-dirty memory tracking (needed by iterative dumps; probe mem_dirty_track first). */
  trackMem?: boolean;
  /** Absolute; a previous (pre-)dump to take unchanged pages from. Needs trackMem or preDump. */
  prevImagesDir?: string;
  /** `criu pre-dump` instead of `criu dump`. */
  preDump?: boolean;
  /** Largest deleted-but-open file CRIU copies into the images, in bytes. */
  ghostLimit?: number;
  /**
   * --stream: hand every image to the image streamer listening on
   * imagesDir/streamer-capture.sock (transfer/stream-capture.ts) instead of
   * writing files. Not with preDump or prevImagesDir (CRIU cannot stream those).
   */
  stream?: boolean;
}

export interface RestoreRequest {
  imagesDir: string;
  workDir?: string;
  /** Default 'restore.log'. */
  logFile?: string;
  verbosity?: CriuVerbosity;
  /** Absolute: the rootfs to restore into (--root). */
  root: string;
  /** Absolute: CRIU writes the restored root task's PID here. */
  pidfile: string;
  /** --restore-detached: CRIU exits once the tree runs (it is not CRIU's child any more). */
  detached: boolean;
  /** --restore-sibling: the restored root becomes a sibling of CRIU (a child of CRIU's parent). */
  sibling: boolean;
  tcpEstablished?: boolean;
  /** Restore established TCP connections closed (clones). Contradicts tcpEstablished. */
  tcpClose?: boolean;
  fileLocks?: boolean;
  manageCgroups?: ManageCgroupsMode;
  /** --cgroup-root: absolute cgroup path (optionally 'controller:/path') to restore the tree's cgroups under. */
  cgroupRoot?: string;
  /**
   * --inherit-fd fd[FD]:KEY: give the restored tree our descriptor FD where it
   * had KEY open. KEY is 'pipe:[INODE]', 'socket:[INODE]', or 'file:/PATH'
   * for a regular file (CRIU's key is then the path relative to --root).
   */
  inheritFds?: Array<{ fd: number; key: string }>;
  /** Passed as --external each, e.g. 'veth[eth0]:tsm-ab12@tsm0'. */
  externals?: string[];
  /** --leave-stopped: the restored tasks are left SIGSTOPped. */
  leaveStopped?: boolean;
  /**
   * --empty-ns net: CRIU makes the network namespace but restores no links,
   * addresses or routes in it; the action script's setup-namespaces step does.
   */
  emptyNetns?: boolean;
  /** --action-script: absolute path of a program CRIU runs at its hooks (CRTOOLS_SCRIPT_ACTION). */
  actionScript?: string;
  /**
   * --stream: ask the image streamer listening on imagesDir/streamer-serve.sock
   * (transfer/stream-serve.ts) for every image instead of reading files.
   */
  stream?: boolean;
}

const MANAGE_CGROUPS: readonly ManageCgroupsMode[] = ['soft', 'full', 'strict', 'ignore'];

function bad(message: string, fix: string): TsmError {
  return new TsmError('EINVAL_ARG', message, { fix });
}

function checkText(what: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw bad(`${what} must be a non-empty string`, `pass ${what}`);
  if (v.includes('\0')) throw bad(`${what} contains a NUL byte`, `remove the NUL byte from ${what}`);
  if (/[\n\r]/.test(v)) throw bad(`${what} contains a line break`, `remove the line break from ${what}`);
  return v;
}

function absPath(what: string, v: unknown): string {
  const s = checkText(what, v);
  if (!path.isAbsolute(s)) throw bad(`${what} must be an absolute path, got ${JSON.stringify(s)}`, `pass an absolute path for ${what}`);
  return s;
}

function logName(what: string, v: unknown): string {
  const s = checkText(what, v);
  if (s.includes('/') || s === '.' || s === '..' || s.startsWith('-')) {
    throw bad(`${what} must be a plain file name, got ${JSON.stringify(s)}`, 'pass a name such as dump.log (it is created in the work or images directory)');
  }
  return s;
}

function verbosityArg(v: unknown): string {
  if (v === undefined) return '-v4';
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4) throw bad(`verbosity must be 0..4, got ${String(v)}`, 'pass 0, 1, 2, 3 or 4');
  return `-v${v}`;
}

function manageCgroupsArg(v: unknown): string[] {
  if (v === undefined) return [];
  if (!MANAGE_CGROUPS.includes(v as ManageCgroupsMode)) {
    throw bad(`manageCgroups must be one of ${MANAGE_CGROUPS.join(', ')}, got ${JSON.stringify(v)}`, `use one of ${MANAGE_CGROUPS.join(', ')}`);
  }
  // an optional argument: CRIU takes it only in the --opt=value form
  return [`--manage-cgroups=${v as string}`];
}

function externalArgs(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad('externals must be an array of strings', "pass e.g. ['veth[eth0]:tsm-ab12']");
  const out: string[] = [];
  for (const [i, x] of (v as unknown[]).entries()) {
    const s = checkText(`externals[${i}]`, x);
    if (s.startsWith('-')) throw bad(`externals[${i}] must not start with '-': ${JSON.stringify(s)}`, "pass a CRIU external such as 'veth[eth0]:tsm-ab12'");
    out.push('--external', s);
  }
  return out;
}

function flag(on: boolean | undefined, name: string): string[] {
  return on === true ? [name] : [];
}

function commonArgs(r: { imagesDir: string; workDir?: string; logFile?: string; verbosity?: CriuVerbosity }, defaultLog: string): string[] {
  const out = ['--images-dir', absPath('imagesDir', r.imagesDir)];
  if (r.workDir !== undefined) out.push('--work-dir', absPath('workDir', r.workDir));
  out.push('--log-file', logName('logFile', r.logFile ?? defaultLog), verbosityArg(r.verbosity));
  return out;
}

const INHERIT_KEY = /^(?:(?:pipe|socket):\[\d+\]|tty\[[0-9a-f]+:[0-9a-f]+\])$/;

function inheritFdArgs(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw bad('inheritFds must be an array', "pass e.g. [{ fd: 3, key: 'pipe:[1234]' }]");
  const out: string[] = [];
  const fds = new Set<number>();
  for (const [i, e] of (v as Array<{ fd?: unknown; key?: unknown }>).entries()) {
    const fd = e?.fd;
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) {
      throw bad(`inheritFds[${i}].fd must be a descriptor number, got ${String(fd)}`, 'pass a non-negative integer');
    }
    if (fds.has(fd)) throw bad(`inheritFds gives fd ${fd} twice`, 'pass each descriptor once');
    fds.add(fd);
    const key = checkText(`inheritFds[${i}].key`, e.key);
    let criuKey: string;
    if (INHERIT_KEY.test(key)) {
      criuKey = key;
    } else if (key.startsWith('file:')) {
      const p = key.slice('file:'.length);
      if (!path.isAbsolute(p) || path.normalize(p) === '/' || p.split('/').includes('..')) {
        throw bad(`inheritFds[${i}].key ${JSON.stringify(key)} must name an absolute file path`, "use 'file:/path/inside/the/container'");
      }
      // CRIU names regular files by their path relative to the root, without the leading '/'
      criuKey = path.normalize(p).replace(/^\/+/, '');
    } else {
      throw bad(`inheritFds[${i}].key ${JSON.stringify(key)} is not 'pipe:[N]', 'socket:[N]', 'tty[RDEV:DEV]' or 'file:/PATH'`, 'use the key /proc/PID/fd/N showed at dump time');
    }
    out.push('--inherit-fd', `fd[${fd}]:${criuKey}`);
  }
  return out;
}

/** `criu dump` (or `criu pre-dump`) for a request. */
export function dumpArgv(r: DumpRequest): string[] {
  if (typeof r.pid !== 'number' || !Number.isSafeInteger(r.pid) || r.pid <= 1) {
    throw bad(`pid must be a process id above 1, got ${String(r.pid)}`, 'pass the PID of the tree root (the container init, as seen from the host)');
  }
  const preDump = r.preDump === true;
  const out = [preDump ? 'pre-dump' : 'dump', '--tree', String(r.pid), ...commonArgs(r, 'dump.log')];
  if (!preDump && r.leaveRunning) out.push('--leave-running');
  out.push(...flag(r.tcpEstablished, '--tcp-established'), ...flag(r.fileLocks, '--file-locks'));
  if (r.freezeCgroup !== undefined) out.push('--freeze-cgroup', absPath('freezeCgroup', r.freezeCgroup));
  out.push(...manageCgroupsArg(r.manageCgroups), ...externalArgs(r.externals));
  out.push(...flag(r.extUnixSk, '--ext-unix-sk'), ...flag(r.shellJob, '--shell-job'), ...flag(r.trackMem, '--track-mem'));
  if (r.prevImagesDir !== undefined) {
    const prev = absPath('prevImagesDir', r.prevImagesDir);
    if (!preDump && r.trackMem !== true) {
      throw bad('prevImagesDir needs trackMem (pages are taken from the previous dump only when memory changes are tracked)', 'set trackMem: true, or drop prevImagesDir');
    }
    const rel = path.relative(r.imagesDir, prev);
    if (rel === '') throw bad('prevImagesDir is the images directory itself', 'pass the directory of the previous dump');
    // relative to --images-dir: CRIU resolves it there and keeps it as the 'parent' symlink,
    // so a chain of image directories can be moved as a whole
    out.push('--prev-images-dir', rel);
  }
  if (r.ghostLimit !== undefined) {
    if (typeof r.ghostLimit !== 'number' || !Number.isSafeInteger(r.ghostLimit) || r.ghostLimit <= 0) {
      throw bad(`ghostLimit must be a positive number of bytes, got ${String(r.ghostLimit)}`, 'pass e.g. 10485760 (10 MiB)');
    }
    out.push('--ghost-limit', String(r.ghostLimit));
  }
  if (r.stream === true) {
    if (preDump || r.prevImagesDir !== undefined) throw bad('stream cannot be combined with preDump or prevImagesDir (CRIU streams only full dumps)', 'drop stream, or dump in full');
    out.push('--stream');
  }
  return out;
}

/** `criu restore` for a request. */
export function restoreArgv(r: RestoreRequest): string[] {
  const out = ['restore', ...commonArgs(r, 'restore.log')];
  out.push('--root', absPath('root', r.root), '--pidfile', absPath('pidfile', r.pidfile));
  out.push(...flag(r.detached, '--restore-detached'), ...flag(r.sibling, '--restore-sibling'));
  if (r.tcpEstablished === true && r.tcpClose === true) {
    throw bad('tcpEstablished and tcpClose contradict each other', 'restore connections (tcpEstablished) or close them (tcpClose), not both');
  }
  out.push(...flag(r.tcpEstablished, '--tcp-established'), ...flag(r.tcpClose, '--tcp-close'), ...flag(r.fileLocks, '--file-locks'));
  out.push(...manageCgroupsArg(r.manageCgroups));
  if (r.cgroupRoot !== undefined) {
    const s = checkText('cgroupRoot', r.cgroupRoot);
    const m = /^(?:([a-z0-9_=,]+):)?(\/.*)$/.exec(s);
    if (!m || (m[2] ?? '').split('/').includes('..')) {
      throw bad(`cgroupRoot must be an absolute cgroup path (optionally 'controller:/path'), got ${JSON.stringify(s)}`, "pass e.g. '/tsmigrate/web'");
    }
    out.push('--cgroup-root', s);
  }
  out.push(...inheritFdArgs(r.inheritFds), ...externalArgs(r.externals), ...flag(r.leaveStopped, '--leave-stopped'), ...flag(r.stream, '--stream'));
  if (r.emptyNetns === true) out.push('--empty-ns', 'net');
  if (r.actionScript !== undefined) out.push('--action-script', absPath('actionScript', r.actionScript));
  return out;
}

/** `criu check`, or `criu check --feature NAME`. */
export function checkArgv(feature?: string): string[] {
  if (feature === undefined) return ['check'];
  if (typeof feature !== 'string' || !/^[a-z0-9][a-z0-9_-]*$/.test(feature)) {
    throw bad(`not a CRIU feature name: ${JSON.stringify(feature)}`, 'use a name such as mem_dirty_track or uffd-noncoop');
  }
  return ['check', '--feature', feature];
}

/** `criu cpuinfo dump`: writes DIR/cpuinfo.img describing this host's CPU. */
export function cpuinfoDumpArgv(dir: string): string[] {
  return ['cpuinfo', 'dump', '--images-dir', absPath('dir', dir)];
}

/** `criu cpuinfo check`: exits 0 when this host's CPU can run what DIR/cpuinfo.img describes. */
export function cpuinfoCheckArgv(dir: string): string[] {
  return ['cpuinfo', 'check', '--images-dir', absPath('dir', dir)];
}
