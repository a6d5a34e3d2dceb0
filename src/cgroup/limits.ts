/**
 * Resource limits: pure parsers (user strings -> numbers), pure mappings to the
 * cgroup v1/v2 files that express them, and the reverse (file contents -> Limits).
 * No I/O here; managers read/write the files.
 */
import { TsmError } from '../errors/errors.js';
import { hugetlbFiles, parseHugetlbFiles, type HugetlbLimit } from './hugetlb.js';
import { ifpriomapWrites, parseIfpriomap, type NetPrio } from './netclass.js';
import { ioMaxLines, parseIoMax, parseV1Throttles, throttleV1Files, type DeviceNumbers, type DeviceRate, type Throttles } from './throttle.js';

export { parseSize } from './size.js';

export interface Limits {
  memoryBytes?: number;
  memoryReservationBytes?: number;
  /** CPUs worth of time, e.g. 1.5 => quota 150000 / period 100000. */
  cpus?: number;
  /** 1..10000 (cgroup v2 scale; converted to cpu.shares on v1). */
  cpuWeight?: number;
  /** e.g. "0-1,3". */
  cpusetCpus?: string;
  /** Max number of tasks; -1 means explicitly unlimited ("max"). */
  pidsLimit?: number;
  /** 1..10000 (cgroup v2 scale; converted to blkio weight 10..1000 on v1). */
  ioWeight?: number;
  /** Huge page limits, one per page size, smallest page first. */
  hugetlb?: HugetlbLimit[];
  /** net_cls class id (a tc handle MAJOR:MINOR as 0xMMMMmmmm); cgroup v1 only. */
  netClsClassid?: number;
  /** net_prio priorities on the host's interfaces, by interface name; cgroup v1 only. */
  netPrio?: NetPrio[];
  /** I/O throttles by device path, each list sorted by path. */
  deviceReadBps?: DeviceRate[];
  deviceWriteBps?: DeviceRate[];
  deviceReadIops?: DeviceRate[];
  deviceWriteIops?: DeviceRate[];
}

/** `optional`: written only where the kernel has the file (e.g. hugetlb's .rsvd limits, kernel >= 5.7). */
export interface V2File { file: string; value: string; optional?: true }
export interface V1File { controller: string; file: string; value: string; optional?: true }

export interface PlanOptions {
  /** cpuset.mems to write with cpuset.cpus (default "0") */
  mems?: string;
  /** path -> MAJOR:MINOR of every throttled device on this host */
  devices?: DeviceNumbers;
}

export const CPU_PERIOD_US = 100_000;
export const MAX_CPUS = 1024;
export const PID_MAX_LIMIT = 4_194_304;

const bad = (msg: string, fix: string): TsmError => new TsmError('EINVAL_ARG', msg, { fix });

/** "1.5" -> 1.5 CPUs; > 0 (at least 0.01 = the kernel's 1ms minimum quota), <= 1024, max 3 decimals. */
export function parseCpus(input: string): number {
  const s = String(input).trim();
  const fix = `use a number of CPUs between 0.01 and ${MAX_CPUS} with at most 3 decimals, e.g. 1.5`;
  if (!/^\d+(\.\d{1,3})?$/.test(s)) throw bad(`invalid CPU count ${JSON.stringify(input)}`, fix);
  const n = Number(s);
  if (n <= 0) throw bad(`CPU count ${JSON.stringify(input)} must be greater than 0`, fix);
  if (n < 0.01) throw bad(`CPU count ${JSON.stringify(input)} is below the kernel minimum quota of 0.01 CPU (1ms)`, fix);
  if (n > MAX_CPUS) throw bad(`CPU count ${JSON.stringify(input)} exceeds ${MAX_CPUS}`, fix);
  return n;
}

/** Expand a kernel CPU list ("0-2,5") to sorted unique numbers; throws on bad syntax. */
export function expandCpuList(input: string): number[] {
  const s = String(input).trim();
  const fix = 'use a CPU list such as 0, 0-1 or 0-1,3';
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(s)) throw bad(`invalid CPU list ${JSON.stringify(input)}`, fix);
  const out = new Set<number>();
  for (const part of s.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    const hi = b ?? a;
    if (hi < a) throw bad(`CPU range ${JSON.stringify(part)} is reversed`, `write it low-high, e.g. ${hi}-${a}`);
    if (hi >= 8192) throw bad(`CPU number ${hi} is too large`, fix);
    for (let c = a; c <= hi; c++) out.add(c);
  }
  return [...out].sort((x, y) => x - y);
}

/** Canonical compressed form: [0,1,2,5] -> "0-2,5". */
export function formatCpuList(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * Validate a cpuset ("0-1,3") against the online CPUs (a kernel list string
 * such as the content of /sys/devices/system/cpu/online, or numbers).
 * Returns the canonical form.
 */
export function parseCpuset(input: string, online: string | number[]): string {
  const cpus = expandCpuList(input);
  const on = new Set(typeof online === 'string' ? expandCpuList(online) : online);
  const missing = cpus.filter((c) => !on.has(c));
  if (missing.length > 0) {
    const onStr = formatCpuList([...on]);
    throw bad(`CPU ${formatCpuList(missing)} in cpuset ${JSON.stringify(input)} is not online (online: ${onStr})`, `choose CPUs from ${onStr}`);
  }
  return formatCpuList(cpus);
}

/** Integer 1..10000 (cgroup v2 cpu.weight / io.weight scale). */
export function parseWeight(input: string | number, what = 'weight'): number {
  const s = String(input).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 10000) {
    throw bad(`invalid ${what} ${JSON.stringify(String(input))}`, `use an integer from 1 to 10000 (default 100)`);
  }
  return n;
}

/** Positive integer task count, or "max"/"-1" for unlimited (-1). */
export function parsePidsLimit(input: string | number): number {
  const s = String(input).trim().toLowerCase();
  if (s === 'max' || s === '-1' || s === 'unlimited') return -1;
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > PID_MAX_LIMIT) {
    throw bad(`invalid pids limit ${JSON.stringify(String(input))}`, `use an integer from 1 to ${PID_MAX_LIMIT}, or max`);
  }
  return n;
}

// ---- conversions -------------------------------------------------------

/** v2 weight (1..10000) -> v1 cpu.shares (2..262144), as runc/crun. */
export const weightToShares = (w: number): number => 2 + Math.floor(((w - 1) * 262142) / 9999);
/** v1 cpu.shares -> v2 weight; rounding makes weightToShares round-trip exactly. */
export const sharesToWeight = (s: number): number => Math.min(10000, Math.max(1, 1 + Math.round(((s - 2) * 9999) / 262142)));
/** v2 io weight (1..10000) -> v1 blkio weight (10..1000). Lossy. */
export const ioWeightToBlkio = (w: number): number => 10 + Math.floor(((w - 1) * 990) / 9999);
/** v1 blkio weight (10..1000) -> v2 io weight, as runc's ConvertBlkIOToIOWeightValue. */
export const blkioToIoWeight = (b: number): number => Math.min(10000, Math.max(1, 1 + Math.floor(((b - 10) * 9999) / 990)));

const quotaUs = (cpus: number): number => Math.round(cpus * CPU_PERIOD_US);

// ---- limits -> files ---------------------------------------------------

/** Files to write on cgroup v2, in order. io.max gets one write per device. */
export function v2Files(l: Limits, opts: PlanOptions = {}): V2File[] {
  const out: V2File[] = [];
  if (l.memoryBytes !== undefined) out.push({ file: 'memory.max', value: String(l.memoryBytes) });
  if (l.memoryReservationBytes !== undefined) out.push({ file: 'memory.low', value: String(l.memoryReservationBytes) });
  if (l.cpus !== undefined) out.push({ file: 'cpu.max', value: `${quotaUs(l.cpus)} ${CPU_PERIOD_US}` });
  if (l.cpuWeight !== undefined) out.push({ file: 'cpu.weight', value: String(l.cpuWeight) });
  if (l.cpusetCpus !== undefined) {
    out.push({ file: 'cpuset.cpus', value: l.cpusetCpus });
    out.push({ file: 'cpuset.mems', value: opts.mems ?? '0' });
  }
  if (l.pidsLimit !== undefined) out.push({ file: 'pids.max', value: l.pidsLimit < 0 ? 'max' : String(l.pidsLimit) });
  if (l.ioWeight !== undefined) out.push({ file: 'io.weight', value: `default ${l.ioWeight}` });
  out.push(...hugetlbFiles(l.hugetlb ?? [], 'v2'));
  for (const line of ioMaxLines(l, opts.devices ?? new Map())) out.push({ file: 'io.max', value: line });
  return out;
}

/**
 * Files to write on cgroup v1, in order. `mems` should be the parent's
 * cpuset.mems (default "0"). blkio weight is emitted as blkio.weight; the
 * manager falls back to blkio.bfq.weight when CFQ's file does not exist.
 * Huge page limits go to the v1 hugetlb controller, or on a hybrid host whose
 * hugetlb controller is in cgroup2 (`hugetlbOn: 'unified'`) to the unified dir.
 */
export function v1Files(l: Limits, opts: PlanOptions & { hugetlbOn?: 'v1' | 'unified' } = {}): V1File[] {
  const out: V1File[] = [];
  const add = (controller: string, file: string, value: string) => out.push({ controller, file, value });
  if (l.memoryBytes !== undefined) add('memory', 'memory.limit_in_bytes', String(l.memoryBytes));
  if (l.memoryReservationBytes !== undefined) add('memory', 'memory.soft_limit_in_bytes', String(l.memoryReservationBytes));
  if (l.cpus !== undefined) {
    add('cpu', 'cpu.cfs_period_us', String(CPU_PERIOD_US));
    add('cpu', 'cpu.cfs_quota_us', String(quotaUs(l.cpus)));
  }
  if (l.cpuWeight !== undefined) add('cpu', 'cpu.shares', String(weightToShares(l.cpuWeight)));
  if (l.cpusetCpus !== undefined) {
    add('cpuset', 'cpuset.cpus', l.cpusetCpus);
    add('cpuset', 'cpuset.mems', opts.mems ?? '0');
  }
  if (l.pidsLimit !== undefined) add('pids', 'pids.max', l.pidsLimit < 0 ? 'max' : String(l.pidsLimit));
  if (l.ioWeight !== undefined) add('blkio', 'blkio.weight', String(ioWeightToBlkio(l.ioWeight)));
  const unified = opts.hugetlbOn === 'unified';
  for (const f of hugetlbFiles(l.hugetlb ?? [], unified ? 'v2' : 'v1')) out.push({ controller: unified ? 'unified' : 'hugetlb', ...f });
  if (l.netClsClassid !== undefined) add('net_cls', 'net_cls.classid', String(l.netClsClassid));
  for (const w of ifpriomapWrites(l.netPrio ?? [])) add('net_prio', 'net_prio.ifpriomap', w);
  for (const f of throttleV1Files(l, opts.devices ?? new Map())) add('blkio', f.file, f.value);
  return out;
}

// ---- files -> limits (readback for inspect) -----------------------------
// Values equal to the kernel default ("max", weight 100, shares 1024, ...)
// read back as unset.

/** v1 "unlimited" memory is PAGE_COUNTER_MAX * PAGE_SIZE (~2^63); anything >= 2^62 counts as unlimited. */
function memValue(s: string | undefined): number | undefined {
  if (s === undefined || s === '' || s === 'max' || s === '-1') return undefined;
  if (!/^\d+$/.test(s)) return undefined;
  if (BigInt(s) >= 1n << 62n) return undefined;
  const n = Number(s);
  return n === 0 ? undefined : n;
}

function intValue(s: string | undefined): number | undefined {
  if (s === undefined || !/^-?\d+$/.test(s)) return undefined;
  return Number(s);
}

const roundCpus = (quota: number, period: number): number => Math.round((quota / period) * 1000) / 1000;

/** Read-back options: `deviceNames` (MAJOR:MINOR -> path) shows throttled devices by the config's paths. */
export interface ReadbackOptions {
  deviceNames?: ReadonlyMap<string, string>;
}

/** The huge page, network and throttle limits read back (shared by v1 and v2). */
function parseExtras(l: Limits, files: Record<string, string | undefined>, t: Throttles): void {
  const huge = parseHugetlbFiles(files);
  if (huge.length) l.hugetlb = huge;
  const classid = intValue(files['net_cls.classid']);
  if (classid !== undefined && classid > 0) l.netClsClassid = classid;
  const prio = parseIfpriomap(files['net_prio.ifpriomap'] ?? '');
  if (prio.length) l.netPrio = prio;
  Object.assign(l, t);
}

/** Reverse of v2Files; `files` maps file name -> trimmed content (missing files absent). */
export function parseV2Limits(files: Record<string, string | undefined>, opts: ReadbackOptions = {}): Limits {
  const l: Limits = {};
  const mem = memValue(files['memory.max']);
  if (mem !== undefined) l.memoryBytes = mem;
  const low = memValue(files['memory.low']);
  if (low !== undefined) l.memoryReservationBytes = low;
  const [q, p] = (files['cpu.max'] ?? '').split(/\s+/);
  const quota = intValue(q), period = intValue(p);
  if (quota !== undefined && quota > 0 && period !== undefined && period > 0) l.cpus = roundCpus(quota, period);
  const w = intValue(files['cpu.weight']);
  if (w !== undefined && w !== 100) l.cpuWeight = w;
  if (files['cpuset.cpus']) l.cpusetCpus = files['cpuset.cpus'];
  const pids = intValue(files['pids.max']);
  if (pids !== undefined && pids > 0) l.pidsLimit = pids;
  const io = /^default\s+(\d+)/m.exec(files['io.weight'] ?? '');
  if (io && Number(io[1]) !== 100) l.ioWeight = Number(io[1]);
  parseExtras(l, files, parseIoMax(files['io.max'] ?? '', opts.deviceNames ?? new Map()));
  return l;
}

/**
 * Reverse of v1Files. `parentCpus` (the parent's cpuset.cpus) makes an
 * inherited cpuset read back as unset, since v1 children always carry a copy.
 */
export function parseV1Limits(files: Record<string, string | undefined>, opts: ReadbackOptions & { parentCpus?: string } = {}): Limits {
  const l: Limits = {};
  const mem = memValue(files['memory.limit_in_bytes']);
  if (mem !== undefined) l.memoryBytes = mem;
  const soft = memValue(files['memory.soft_limit_in_bytes']);
  if (soft !== undefined) l.memoryReservationBytes = soft;
  const quota = intValue(files['cpu.cfs_quota_us']), period = intValue(files['cpu.cfs_period_us']);
  if (quota !== undefined && quota > 0 && period !== undefined && period > 0) l.cpus = roundCpus(quota, period);
  const shares = intValue(files['cpu.shares']);
  if (shares !== undefined && shares !== 1024) l.cpuWeight = sharesToWeight(shares);
  const cs = files['cpuset.cpus'];
  if (cs && cs !== opts.parentCpus) l.cpusetCpus = cs;
  const pids = intValue(files['pids.max']);
  if (pids !== undefined && pids > 0) l.pidsLimit = pids;
  const bw = intValue(files['blkio.weight']);
  const bfq = intValue(files['blkio.bfq.weight']);
  if (bw !== undefined && bw !== 500) l.ioWeight = blkioToIoWeight(bw);
  else if (bw === undefined && bfq !== undefined && bfq !== 100) l.ioWeight = blkioToIoWeight(bfq);
  parseExtras(l, files, parseV1Throttles(files, opts.deviceNames ?? new Map()));
  return l;
}
