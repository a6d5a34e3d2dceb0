/**
 * One small cgroup-manager interface; v1 (v1.ts, also used on hybrid hosts)
 * and v2 (v2.ts) implement it, factory.ts picks one from the detected layout.
 */
import type { HostProbe } from './host.js';
import type { Limits } from './limits.js';
import type { DeviceRule } from '../security/devices.js';
import type { LimitProblem } from './support.js';
import type { FreezerIO, FreezerState } from '../freezer/freezer.js';
import type { Logger } from '../util/logger.js';

export interface CgroupStats {
  memoryBytes?: number;
  pids?: number;
  cpuUsageNs?: number;
  oomKills?: number;
}

/** What the memory controller says happened at the limit; a field is absent where the kernel has no such file. */
export interface MemoryEvents {
  /** tasks the kernel's OOM killer killed in this cgroup (it does not say when) */
  oomKills?: number;
  /** times the usage hit the limit (v1 memory.failcnt, v2 memory.events "max") */
  limitHits?: number;
  /** the highest usage seen (v1 memory.max_usage_in_bytes, v2 memory.peak) */
  peakBytes?: number;
}

export interface CgroupManager {
  /** The backend in use. */
  readonly kind: 'v1' | 'v2';
  /** controller (or 'unified') -> absolute dir of this container's cgroup. */
  readonly paths: Record<string, string>;
  /** mkdir in every hierarchy (idempotent); v1 cpuset: copy cpuset.cpus/mems from parent. */
  create(): Promise<void>;
  /**
   * Every limit this host cannot apply with this backend (a controller it lacks, a huge page
   * size it does not offer, a device path that is no block device here, ...), touching nothing.
   * `where` names the host in the messages ("this host", "the peer").
   */
  check(limits: Limits, where?: string): Promise<LimitProblem[]>;
  /** Write the limits; refuses (before writing anything) what check() reports. */
  apply(limits: Limits): Promise<void>;
  /** Allow exactly these devices (v1 devices.deny/devices.allow, v2 a BPF device program). */
  applyDevices(rules: readonly DeviceRule[]): Promise<void>;
  /** Write pid to cgroup.procs of each hierarchy. */
  addProcess(pid: number): Promise<void>;
  /** All pids in the cgroup (not recursive), sorted. */
  pids(): Promise<number[]>;
  freeze(timeoutMs?: number): Promise<void>;
  thaw(timeoutMs?: number): Promise<void>;
  freezerState(): Promise<FreezerState>;
  stats(): Promise<CgroupStats>;
  /** The limits the kernel holds; `known` (the config's limits) names throttled devices by their paths. */
  readLimits(known?: Limits): Promise<Limits>;
  /** The cgroup dir to hand CRIU as --freeze-cgroup (v1 freezer dir, or the v2 dir). */
  freezerPath(): string;
  /** Signal every pid in the cgroup (default SIGKILL; v2 uses cgroup.kill where available). */
  killAll(signal?: NodeJS.Signals): Promise<void>;
  /** rmdir every dir, retrying briefly while tasks exit; idempotent; ECGROUP if still busy. */
  destroy(): Promise<void>;
  /** True if the cgroup dir exists in any hierarchy. */
  exists(): Promise<boolean>;
  memoryEvents(): Promise<MemoryEvents>;
  /**
   * The file whose "oom_kill N" line counts OOM kills, for the supervisor to watch
   * (v1 memory.oom_control, v2 memory.events); undefined without a memory hierarchy.
   */
  oomKillFile(): string | undefined;
}

/** What backends need besides their hierarchy paths. */
export interface BackendOptions {
  logger: Logger;
  /** Bound for destroy()'s rmdir retries (default 3000 ms). */
  destroyTimeoutMs: number;
  /** Freezer file access (tests inject fakes). */
  freezerIO?: FreezerIO;
  /** Freezer poll interval in ms (default 5). */
  freezePollMs?: number;
  /** Huge page sizes, devices and interfaces of the host (tests inject fakes). */
  probe: HostProbe;
}

export { createCgroupManager } from './factory.js';
export type { CreateCgroupManagerOptions } from './factory.js';
