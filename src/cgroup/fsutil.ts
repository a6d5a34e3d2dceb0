/**
 * Small, careful file helpers for cgroupfs.
 *
 * - safeJoin: a cgroup path that came from metadata can never escape the
 *   cgroup root ('..', absolute components, empty components and NUL are refused).
 * - writeCgroupFile: one open(O_WRONLY|O_TRUNC) + one write, never O_CREAT
 *   (cgroupfs does not create files, and fakes in tests must not either);
 *   kernel errors become a one-line TsmError('ECGROUP') naming file and value.
 */
import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

/** Join relative cgroup path parts under root, refusing anything that could escape it. */
export function safeJoin(root: string, ...parts: string[]): string {
  if (!path.isAbsolute(root) || root.includes('\0')) {
    throw new TsmError('EINVAL_ARG', `cgroup root ${JSON.stringify(root)} is not an absolute path`, {
      fix: 'pass an absolute cgroup root such as /sys/fs/cgroup',
    });
  }
  const segs: string[] = [];
  for (const part of parts) {
    if (part.includes('\0') || part.startsWith('/') || part === '') {
      throw badPath(part);
    }
    for (const seg of part.split('/')) {
      if (seg === '' || seg === '.' || seg === '..') throw badPath(part);
      segs.push(seg);
    }
  }
  const base = path.resolve(root);
  const full = path.resolve(base, ...segs);
  if (full !== base && !full.startsWith(base === '/' ? '/' : base + '/')) throw badPath(parts.join('/'));
  return full;
}

function badPath(p: string): TsmError {
  return new TsmError('EINVAL_ARG', `cgroup path ${JSON.stringify(p)} is not a plain relative path`, {
    fix: "use names without '..', '.', empty or absolute components and without NUL bytes",
  });
}

/** Validate a single cgroup directory name (one component). */
export function checkCgroupName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,254}$/.test(name) || name === '..' || name === '.') {
    throw new TsmError('EINVAL_ARG', `cgroup name ${JSON.stringify(name)} is invalid`, {
      fix: 'use 1-255 characters from [A-Za-z0-9_.:@-], starting with a letter or digit',
    });
  }
  return name;
}

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? 'EUNKNOWN';
}

const WRITE_FIX: Record<string, string> = {
  EINVAL: 'check the value is valid for this kernel (range, unit, or a limit below current usage)',
  EBUSY: 'the cgroup is busy (it has tasks or children); stop them first',
  ENOENT: 'the file does not exist: is the controller mounted (v1) or enabled in the parent cgroup.subtree_control (v2)?',
  EACCES: 'run as root',
  EPERM: 'run as root',
  ENOSPC: 'set cpuset.cpus and cpuset.mems before adding tasks',
  ESRCH: 'the process has already exited',
  EOPNOTSUPP: 'this kernel does not support that setting',
};

/** Write `value` to `dir/file` in a single write(2). */
export async function writeCgroupFile(dir: string, file: string, value: string, opts: { fix?: string } = {}): Promise<void> {
  const p = path.join(dir, file);
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(p, constants.O_WRONLY | constants.O_TRUNC);
    const buf = Buffer.from(value);
    const { bytesWritten } = await fh.write(buf, 0, buf.length, null);
    if (bytesWritten !== buf.length) {
      throw Object.assign(new Error(`short write to ${p}`), { code: 'EIO' });
    }
  } catch (e) {
    const code = errnoOf(e);
    throw new TsmError('ECGROUP', `cannot set ${file} to ${JSON.stringify(value)} in ${dir}: ${code}`, {
      fix: opts.fix ?? WRITE_FIX[code] ?? 'check dmesg and the cgroup configuration',
      cause: e,
    });
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** Read `dir/file` trimmed; undefined if it does not exist. */
export async function readCgroupFileOpt(dir: string, file: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(path.join(dir, file), 'utf8')).trim();
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw readError(dir, file, e);
  }
}

/** Read `dir/file` trimmed; ECGROUP if it is missing or unreadable. */
export async function readCgroupFile(dir: string, file: string): Promise<string> {
  try {
    return (await fs.readFile(path.join(dir, file), 'utf8')).trim();
  } catch (e) {
    throw readError(dir, file, e);
  }
}

function readError(dir: string, file: string, e: unknown): TsmError {
  const code = errnoOf(e);
  return new TsmError('ECGROUP', `cannot read ${file} in ${dir}: ${code}`, {
    fix: WRITE_FIX[code] ?? 'check that the cgroup exists',
    cause: e,
  });
}

/** Parse "key value" lines (cgroup.events, memory.events, cpu.stat, pids.events ...). */
export function parseKeyValues(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf(' ');
    if (i < 0) m.set(t, '');
    else m.set(t.slice(0, i), t.slice(i + 1).trim());
  }
  return m;
}

/** A counter's text as a number; undefined when absent or not a whole number. */
export function numberOf(text: string | undefined): number | undefined {
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** The fields of o that are defined (for records whose fields are optional, never undefined). */
export function definedOnly<T extends object>(o: { [K in keyof Required<T>]: Required<T>[K] | undefined }): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Parse cgroup.procs: one pid per line. */
export function parsePidList(text: string): number[] {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

export async function mkdirIdempotent(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') return false;
    throw new TsmError('ECGROUP', `cannot create cgroup ${dir}: ${errnoOf(e)}`, {
      fix: WRITE_FIX[errnoOf(e)] ?? 'check that the hierarchy is mounted read-write',
      cause: e,
    });
  }
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * rmdir a cgroup directory and any child cgroups (depth first), retrying
 * EBUSY/ENOTEMPTY until `deadline` (ms since epoch) while tasks exit.
 * A missing directory is success (idempotent).
 */
export async function removeCgroupDir(dir: string, deadline: number): Promise<void> {
  for (;;) {
    let lastCode = '';
    try {
      for (const ent of await fs.readdir(dir, { withFileTypes: true })) {
        if (ent.isDirectory()) await removeCgroupDir(path.join(dir, ent.name), deadline);
      }
      await fs.rmdir(dir);
      return;
    } catch (e) {
      if (e instanceof TsmError) throw e;
      lastCode = errnoOf(e);
      if (lastCode === 'ENOENT') return;
      if (lastCode !== 'EBUSY' && lastCode !== 'ENOTEMPTY') {
        throw new TsmError('ECGROUP', `cannot remove cgroup ${dir}: ${lastCode}`, { fix: WRITE_FIX[lastCode] ?? 'check the cgroup', cause: e });
      }
    }
    if (Date.now() >= deadline) {
      throw new TsmError('ECGROUP', `cgroup ${dir} is still busy (${lastCode}) after waiting for its tasks to exit`, {
        fix: 'kill the remaining processes (see cgroup.procs) and retry',
      });
    }
    await sleep(20);
  }
}

/** Send `signal` to each pid, ignoring ones that already exited. */
export function signalPids(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (e) {
      if (errnoOf(e) !== 'ESRCH') throw e;
    }
  }
}

export function checkPid(pid: number): number {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new TsmError('EINVAL_ARG', `invalid pid ${pid}`, { fix: 'pass the positive pid of a running process' });
  }
  return pid;
}
