import { createHash } from 'node:crypto';
import { createCgroupManager, type CgroupManager } from '../cgroup/manager.js';
import { ContainerStore } from '../container/store.js';
import { criuDeadlineSetting, type CriuDeadlineSettings } from '../criu/deadline.js';
import { defaultNetworkSettings, type NetworkSettings } from '../network/setup.js';
import { DEFAULT_ROOT, statePaths, type StatePaths } from '../state/paths.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { resolveTools, type Tools } from './tools.js';

/**
 * The composition root: one place that picks concrete implementations
 * (cgroup backend, network settings, state root). Everything else takes a Runtime.
 */
export interface Runtime {
  readonly paths: StatePaths;
  readonly store: ContainerStore;
  readonly logger: Logger;
  readonly network: NetworkSettings;
  readonly cgroupParent: string;
  /** how long CRIU may run (criu/deadline.ts): --criu-deadline, else $TSMIGRATE_CRIU_DEADLINE, else the defaults */
  readonly criuDeadline: CriuDeadlineSettings;
  /** where CRIU, the supervisor and the streamer are, and where images are staged: read once here (tools.ts) */
  readonly tools: Tools;
  cgroups(name: string): CgroupManager;
}

/** Each state root (a simulated host) gets its own cgroup parent, so two roots never share a cgroup. */
export function cgroupParentFor(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['TSMIGRATE_CGROUP_PARENT'];
  if (fromEnv) return fromEnv;
  if (root === DEFAULT_ROOT) return 'tsmigrate';
  return `tsmigrate-${createHash('sha256').update(root).digest('hex').slice(0, 8)}`;
}

export function createRuntime(opts: { root: string; logger?: Logger; env?: NodeJS.ProcessEnv; criuDeadline?: CriuDeadlineSettings }): Runtime {
  const env = opts.env ?? process.env;
  const paths = statePaths(opts.root);
  const cgroupParent = cgroupParentFor(paths.root, env);
  return {
    paths,
    store: new ContainerStore(paths),
    logger: opts.logger ?? silentLogger,
    network: defaultNetworkSettings(env),
    cgroupParent,
    criuDeadline: opts.criuDeadline ?? criuDeadlineSetting(undefined, env),
    tools: resolveTools(env),
    cgroups: (name) =>
      createCgroupManager({
        name,
        parent: cgroupParent,
        ...(env['TSMIGRATE_CGROUP_ROOT'] ? { root: env['TSMIGRATE_CGROUP_ROOT'] } : {}),
        ...(env['TSMIGRATE_CGROUP_PREFER'] === 'v1' || env['TSMIGRATE_CGROUP_PREFER'] === 'v2' ? { prefer: env['TSMIGRATE_CGROUP_PREFER'] } : {}),
      }),
  };
}
