import { readFileSync } from 'node:fs';
import { canonicalHugetlb, parseHugetlbLimit } from '../cgroup/hugetlb.js';
import { parseCpus, parseCpuset, parsePidsLimit, parseSize, parseWeight, type Limits } from '../cgroup/limits.js';
import { canonicalNetPrio, parseNetClsClassid, parseNetPrio } from '../cgroup/netclass.js';
import { canonicalRates, parseDeviceRate, THROTTLES, type ThrottleKey } from '../cgroup/throttle.js';
import { TsmError } from '../errors/errors.js';
import { DEFAULT_LOG_POLICY, MAX_LOG_FILES, MIN_LOG_BYTES } from '../container/log-files.js';
import type { RunRequest } from '../container/run.js';
import type { LogPolicy } from '../container/types.js';
import { validateName } from '../util/name.js';

/** The raw strings commander hands us for `run`. */
export interface RawRunOptions {
  image?: string;
  memory?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuWeight?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  ioWeight?: string;
  hugetlbLimit?: string[];
  netClsClassid?: string;
  netPrio?: string[];
  deviceReadBps?: string[];
  deviceWriteBps?: string[];
  deviceReadIops?: string[];
  deviceWriteIops?: string[];
  hostname?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  net?: string;
  ip?: string;
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  securityOpt?: string[];
  device?: string[];
  userns?: string;
  logMaxSize?: string;
  logMaxFiles?: string;
  /** docker's and podman's spelling: max-size=SIZE, max-file=N (repeatable) */
  logOpt?: string[];
  tty?: boolean;
  interactive?: boolean;
}

const bad = (msg: string, fix: string) => new TsmError('EINVAL_ARG', msg, { fix });

export function parseEnv(kv: string): string {
  const i = kv.indexOf('=');
  const key = i < 0 ? kv : kv.slice(0, i);
  if (i <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
    throw bad(`invalid --env "${kv}"`, 'use --env KEY=VALUE with KEY made of letters, digits and _');
  }
  if (kv.includes('\0')) throw bad(`invalid --env "${key}": contains a NUL byte`, 'remove it');
  return kv;
}

export function parseUser(s: string): { uid: number; gid: number } {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(s);
  const uid = m ? Number(m[1]) : NaN;
  const gid = m ? Number(m[2]) : NaN;
  if (!m || uid > 0xfffffffe || gid > 0xfffffffe) throw bad(`invalid --user "${s}"`, 'use numeric UID:GID, e.g. --user 1000:1000');
  return { uid, gid };
}

export function parseHostname(s: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(s) || s.length > 64) {
    throw bad(`invalid --hostname "${s}"`, 'use letters, digits, - and . (at most 64 characters)');
  }
  return s;
}

export function parseWorkdir(s: string): string {
  if (!s.startsWith('/') || s.includes('\0')) throw bad(`invalid --workdir "${s}"`, 'give an absolute path inside the container, e.g. /app');
  return s;
}

export function onlineCpus(): string {
  try {
    return readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  } catch {
    return '0';
  }
}

/** The huge page, network class and I/O throttle flags -> their limits (pure; host checks come later). */
export function parseSubsystemLimits(o: RawRunOptions): Limits {
  const limits: Limits = {};
  if (o.hugetlbLimit?.length) limits.hugetlb = canonicalHugetlb(o.hugetlbLimit.map(parseHugetlbLimit));
  if (o.netClsClassid !== undefined) limits.netClsClassid = parseNetClsClassid(o.netClsClassid);
  if (o.netPrio?.length) limits.netPrio = canonicalNetPrio(o.netPrio.map(parseNetPrio));
  for (const k of THROTTLES) {
    const raw = o[k.key satisfies ThrottleKey];
    if (raw?.length) limits[k.key] = canonicalRates(k, raw.map((r) => parseDeviceRate(k, r)));
  }
  return limits;
}

/**
 * --log-max-size SIZE and --log-max-files N, or --log-opt max-size=SIZE / max-file=N, into a
 * rotation policy; undefined when none is given (the default applies).
 */
export function parseLogPolicy(o: Pick<RawRunOptions, 'logMaxSize' | 'logMaxFiles' | 'logOpt'>, dflt: LogPolicy): LogPolicy | undefined {
  let size = o.logMaxSize === undefined ? undefined : { flag: '--log-max-size', value: o.logMaxSize };
  let files = o.logMaxFiles === undefined ? undefined : { flag: '--log-max-files', value: o.logMaxFiles };
  for (const kv of o.logOpt ?? []) {
    const i = kv.indexOf('=');
    const key = i < 0 ? kv : kv.slice(0, i);
    const value = kv.slice(i + 1);
    const flag = `--log-opt ${key}`;
    if (i < 0 || (key !== 'max-size' && key !== 'max-file')) {
      throw bad(`invalid --log-opt "${kv}"`, 'use --log-opt max-size=SIZE or --log-opt max-file=N');
    }
    const prev = key === 'max-size' ? size : files;
    if (prev) throw bad(`${flag} repeats ${prev.flag}`, 'give each log option once');
    if (key === 'max-size') size = { flag, value };
    else files = { flag, value };
  }
  if (!size && !files) return undefined;
  let maxBytes = dflt.maxBytes;
  if (size) {
    const fix = `give a size of at least ${MIN_LOG_BYTES / 1024}k, e.g. ${size.flag === '--log-max-size' ? '--log-max-size 10m' : '--log-opt max-size=10m'}`;
    try {
      maxBytes = parseSize(size.value);
    } catch {
      throw bad(`invalid ${size.flag} "${size.value}"`, fix);
    }
    if (maxBytes < MIN_LOG_BYTES) throw bad(`${size.flag} "${size.value}" is below the minimum of ${MIN_LOG_BYTES / 1024} KiB`, fix);
  }
  let maxFiles = dflt.maxFiles;
  if (files) {
    maxFiles = Number(files.value);
    if (!/^\d{1,3}$/.test(files.value) || maxFiles < 1 || maxFiles > MAX_LOG_FILES) {
      throw bad(`invalid ${files.flag} "${files.value}"`, `give a whole number of files from 1 to ${MAX_LOG_FILES} (the current one included)`);
    }
  }
  return { maxBytes, maxFiles };
}

/** Pure apart from the online-CPU list it is given: raw CLI strings -> a validated RunRequest. */
export function parseRunRequest(name: string, command: string[], o: RawRunOptions, online = onlineCpus()): RunRequest {
  validateName('container', name);
  if (!o.image) throw bad('missing --image', 'name an image: tsmigrate run NAME --image IMAGE -- CMD (see tsmigrate image ls)');
  const limits: Limits = {};
  if (o.memory !== undefined) limits.memoryBytes = parseSize(o.memory);
  if (o.memoryReservation !== undefined) limits.memoryReservationBytes = parseSize(o.memoryReservation);
  if (limits.memoryBytes !== undefined && limits.memoryReservationBytes !== undefined && limits.memoryReservationBytes > limits.memoryBytes) {
    throw bad('--memory-reservation is larger than --memory', 'make the reservation at most the limit');
  }
  if (o.cpus !== undefined) limits.cpus = parseCpus(o.cpus);
  if (o.cpuWeight !== undefined) limits.cpuWeight = parseWeight(o.cpuWeight, '--cpu-weight');
  if (o.cpusetCpus !== undefined) limits.cpusetCpus = parseCpuset(o.cpusetCpus, online);
  if (o.pidsLimit !== undefined) limits.pidsLimit = parsePidsLimit(o.pidsLimit);
  if (o.ioWeight !== undefined) limits.ioWeight = parseWeight(o.ioWeight, '--io-weight');
  Object.assign(limits, parseSubsystemLimits(o));
  const net = o.net ?? 'none';
  if (net !== 'none' && net !== 'bridge') throw bad(`invalid --net "${net}"`, 'use --net none or --net bridge');
  if (o.ip !== undefined && net !== 'bridge') throw bad('--ip needs --net bridge', 'add --net bridge or drop --ip');
  const req: RunRequest = {
    name,
    image: o.image,
    command,
    env: (o.env ?? []).map(parseEnv),
    limits,
    net,
  };
  if (o.hostname !== undefined) req.hostname = parseHostname(o.hostname);
  if (o.workdir !== undefined) req.workdir = parseWorkdir(o.workdir);
  if (o.user !== undefined) req.user = parseUser(o.user);
  if (o.ip !== undefined) req.ip = o.ip;
  if (o.userns !== undefined) {
    if (o.userns !== 'auto' && o.userns !== 'host' && o.userns !== '') throw bad(`invalid --userns "${o.userns}"`, 'use --userns auto (a user namespace of its own) or --userns host (none, the default)');
    if (o.userns === 'auto') req.userns = 'auto';
  }
  req.security = {
    privileged: o.privileged === true,
    capAdd: o.capAdd ?? [],
    capDrop: o.capDrop ?? [],
    securityOpt: o.securityOpt ?? [],
    device: o.device ?? [],
  };
  const log = parseLogPolicy(o, DEFAULT_LOG_POLICY);
  if (log) req.log = log;
  if (o.interactive && !o.tty) {
    throw bad('run -i without -t is not supported yet', 'add -t (the container gets a terminal), or pipe input in with tsmigrate exec -i');
  }
  if (o.tty) req.tty = true;
  return req;
}
