import type { Limits } from '../cgroup/limits.js';
import type { NetworkPlan, NetMode } from '../network/setup.js';
import type { SecurityProfile } from '../security/profile.js';
import type { IdRange } from '../userns/ranges.js';

/** container.log rotation, as docker's json-file max-size and max-file: at most maxFiles files of maxBytes each */
export interface LogPolicy {
  readonly maxBytes: number;
  /** the current file included */
  readonly maxFiles: number;
}

/** What the user asked for: fixed at `run`, carried by checkpoints and moves. */
export interface ContainerConfig {
  readonly name: string;
  readonly image: { readonly name: string; readonly digest: string };
  readonly command: readonly string[];
  readonly env: readonly string[];
  readonly workdir: string;
  readonly user?: { readonly uid: number; readonly gid: number };
  readonly hostname: string;
  readonly limits: Limits;
  readonly net: { readonly mode: NetMode; readonly ip?: string };
  /** absent in configs written before logs were rotated: the default applies (log-files.ts) */
  readonly log?: LogPolicy;
  readonly createdAt: string;
  /** absent in containers made before profiles existed: they keep root's powers (LEGACY_PROFILE) */
  readonly security?: SecurityProfile;
  /** --userns auto: the host ids of the container's user namespace (root is start); kept across moves */
  readonly userns?: IdRange;
  /** run -t: the init's stdio is a pty of the container's devpts, its master held by the supervisor */
  readonly tty?: boolean;
}

/** What the runtime made for it: changes with every start, restore or move. */
export interface ContainerRuntimeState {
  status: 'creating' | 'running' | 'stopped' | 'removing';
  shimPid?: number;
  initPid?: number;
  /** /proc/PID/stat field 22, to tell our init from a recycled pid */
  initStartTime?: string;
  startedAt?: string;
  cgroupParent: string;
  cgroupPaths?: Record<string, string>;
  network?: NetworkPlan;
  rootfs: { upper: string; work: string; merged: string; lower: string };
  /** pipe:[inode] of the init's stdout and stderr, for CRIU's --inherit-fd on restore */
  stdio?: { stdout: string; stderr: string };
  /** bumped by every move; a host never restores an epoch older than one it has seen */
  epoch?: number;
  /** set while a move brings this container in */
  migrationId?: string;
}

export type ContainerStatus = 'creating' | 'running' | 'frozen' | 'exited' | 'removing';

export interface ExitInfo {
  exitCode: number;
  signal: string | null;
  exitedAt: string;
  /** the kernel killed a task of the container for memory within a second of its end (absent from older supervisors) */
  oomKilled?: boolean;
}

export interface ContainerView {
  config: ContainerConfig;
  state: ContainerRuntimeState;
  status: ContainerStatus;
  exit?: ExitInfo;
}
