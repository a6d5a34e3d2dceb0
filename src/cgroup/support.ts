/**
 * Whether a host can carry a container's limits, pure: given what the host
 * offers (the backend's controllers, huge page sizes, devices by path,
 * interfaces), every limit it cannot apply, each as one clear problem. Run
 * before anything is created (run, restore) and by a move's peer before the freeze.
 */
import { TsmError, type ErrorCode } from '../errors/errors.js';
import type { DeviceFact } from './host.js';
import type { Limits } from './limits.js';
import type { CgroupManager } from './manager.js';
import { THROTTLES, throttledPaths, type DeviceNumbers } from './throttle.js';

export type Subsystem = 'hugetlb' | 'net_cls' | 'net_prio' | 'throttle';

export interface Unavailable {
  reason: string;
  fix: string;
}

export interface HostFacts {
  /** why a subsystem cannot be used with this backend on this host; absent: it can */
  unavailable: Partial<Record<Subsystem, Unavailable>>;
  /** huge page sizes offered ("2MB", "1GB") */
  pageSizes: string[];
  /** what each throttled device path is on this host */
  devices: ReadonlyMap<string, DeviceFact>;
  /** the host's network interfaces */
  interfaces: string[];
}

export interface LimitProblem {
  code: ErrorCode;
  /** the pre-flight check it belongs to */
  check: 'cgroups' | 'hugepages' | 'devices' | 'interfaces';
  message: string;
  fix: string;
}

/** The subsystems a container's limits use (beyond memory, CPU, pids and I/O weight). */
export function subsystemsOf(l: Limits): Subsystem[] {
  const out: Subsystem[] = [];
  if (l.hugetlb?.length) out.push('hugetlb');
  if (l.netClsClassid !== undefined) out.push('net_cls');
  if (l.netPrio?.length) out.push('net_prio');
  if (throttledPaths(l).length > 0) out.push('throttle');
  return out;
}

function flagsOf(l: Limits, s: Subsystem): string {
  switch (s) {
    case 'hugetlb': return '--hugetlb-limit';
    case 'net_cls': return '--net-cls-classid';
    case 'net_prio': return '--net-prio';
    case 'throttle': return THROTTLES.filter((k) => l[k.key]?.length).map((k) => k.flag).join(', ');
  }
}

/** Every limit of `l` that `where` ("this host", "the peer") cannot apply; empty when all fit. */
export function limitProblems(l: Limits, f: HostFacts, where = 'this host'): LimitProblem[] {
  const out: LimitProblem[] = [];
  const uses = subsystemsOf(l);
  for (const s of uses) {
    const u = f.unavailable[s];
    if (u) out.push({ code: 'ECGROUP_MISSING', check: 'cgroups', message: `${flagsOf(l, s)} cannot be applied on ${where}: ${u.reason}`, fix: u.fix });
  }
  if (uses.includes('hugetlb') && !f.unavailable.hugetlb) {
    for (const h of l.hugetlb ?? []) {
      if (!f.pageSizes.includes(h.pageSize)) {
        out.push({
          code: 'EINVAL_ARG', check: 'hugepages',
          message: `--hugetlb-limit ${h.pageSize}: ${where} has no ${h.pageSize} huge pages (it offers ${f.pageSizes.join(', ') || 'none'})`,
          fix: `use a page size listed in /sys/kernel/mm/hugepages${f.pageSizes[0] ? `, e.g. ${f.pageSizes[0]}` : ''}`,
        });
      }
    }
  }
  if (uses.includes('net_prio') && !f.unavailable.net_prio) {
    for (const p of l.netPrio ?? []) {
      if (!f.interfaces.includes(p.iface)) {
        out.push({
          code: 'EINVAL_ARG', check: 'interfaces',
          message: `--net-prio ${p.iface}: ${where} has no network interface ${p.iface}`,
          fix: `name one of its interfaces (${listSome(f.interfaces)}): net_prio sets priorities on the host's interfaces`,
        });
      }
    }
  }
  if (uses.includes('throttle') && !f.unavailable.throttle) out.push(...deviceProblems(l, f, where));
  return out;
}

function listSome(items: string[], max = 8): string {
  if (items.length === 0) return 'none';
  return items.length > max ? `${items.slice(0, max).join(', ')}, ...` : items.join(', ');
}

function deviceProblems(l: Limits, f: HostFacts, where: string): LimitProblem[] {
  const out: LimitProblem[] = [];
  const byDev = new Map<string, string>();
  const lsblk = 'name a whole block device (see lsblk)';
  for (const p of throttledPaths(l)) {
    const flag = THROTTLES.find((k) => l[k.key]?.some((r) => r.path === p))!.flag;
    const fact = f.devices.get(p) ?? { kind: 'missing' };
    const add = (message: string, fix = lsblk) => out.push({ code: 'EINVAL_ARG', check: 'devices', message: `${flag} ${p}: ${message}`, fix });
    if (fact.kind === 'missing') add(`no such device on ${where}`);
    else if (fact.kind === 'other') add(`${fact.what}, not a block device`);
    else if (fact.partition) add(`${fact.dev} is a partition; the kernel throttles whole disks only`, 'name the disk it is on (lsblk shows it)');
    else if (byDev.has(fact.dev)) add(`the same device (${fact.dev}) as ${byDev.get(fact.dev)} on ${where}`, 'name each device once');
    else byDev.set(fact.dev, p);
  }
  return out;
}

/** path -> MAJOR:MINOR of every throttled device that is a usable block device here. */
export function deviceNumbers(f: HostFacts): DeviceNumbers {
  const m = new Map<string, string>();
  for (const [p, fact] of f.devices) if (fact.kind === 'block') m.set(p, fact.dev);
  return m;
}

/** MAJOR:MINOR -> the path the config names it by, to show read-back throttles by path. */
export function deviceNames(f: HostFacts): ReadonlyMap<string, string> {
  const m = new Map<string, string>();
  for (const [p, fact] of f.devices) if (fact.kind === 'block' && !m.has(fact.dev)) m.set(fact.dev, p);
  return m;
}

/** A problem as the error run and restore stop with. */
export function problemError(p: LimitProblem): TsmError {
  return new TsmError(p.code, p.message, { fix: p.fix });
}

/** How to get net_cls or net_prio mounted on a v1 or hybrid host (as scripts/cgroup-net.sh does). */
export function mountNetFix(flag: string): string {
  return `mount it (mkdir /sys/fs/cgroup/net_cls,net_prio && mount -t cgroup -o net_cls,net_prio cgroup /sys/fs/cgroup/net_cls,net_prio; scripts/cgroup-net.sh does), or drop ${flag}`;
}

/** Throw the first limit `cg` cannot apply on this host, before anything is created. */
export async function assertApplicable(cg: Pick<CgroupManager, 'check'>, limits: Limits): Promise<void> {
  const problems = await cg.check(limits);
  if (problems[0]) throw problemError(problems[0]);
}
