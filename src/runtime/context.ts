import { createHash } from 'node:crypto';
import { createCgroupManager, type CgroupManager } from '../cgroup/manager.js';
import { ContainerStore } from '../container/store.js';
import { criuDeadlineSetting, type CriuDeadlineSettings } from '../criu/deadline.js';
import { resolveConfigPath } from '../hosts/config.js';
import { defaultNetworkSettings, type NetworkSettings } from '../network/setup.js';
import { hostSigning, type Signing, type TrustOverride } from '../sign/signing.js';
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
  /** signs what this host makes, checks what it restores (sign/signing.ts) */
  readonly signing: Signing;
  cgroups(name: string): CgroupManager;
}

/** Each state root (a simulated host) gets its own cgroup parent, so two roots never share a cgroup. */
export function cgroupParentFor(root: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['TSMIGRATE_CGROUP_PARENT'];
  if (fromEnv) return fromEnv;
  if (root === DEFAULT_ROOT) return 'tsmigrate';
  return `tsmigrate-${createHash('sha256').update(root).digest('hex').slice(0, 8)}`;
}

export interface RuntimeOptions {
  root: string;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  criuDeadline?: CriuDeadlineSettings;
  /** the hosts config (its trusted keys); default $TSMIGRATE_CONFIG or /etc/tsmigrate/config.yaml */
  configFile?: string;
  /** --trust-signer */
  trustOverride?: TrustOverride;
  /** another signing (the benchmark's, with checks off) */
  signing?: Signing;
}

export function createRuntime(opts: RuntimeOptions): Runtime {
  const env = opts.env ?? process.env;
  const paths = statePaths(opts.root);
  const cgroupParent = cgroupParentFor(paths.root, env);
  const logger = opts.logger ?? silentLogger;
  const configFile = opts.configFile ?? resolveConfigPath(undefined, env);
  return {
    paths,
    store: new ContainerStore(paths),
    logger,
    network: defaultNetworkSettings(env),
    cgroupParent,
    criuDeadline: opts.criuDeadline ?? criuDeadlineSetting(undefined, env),
    signing: opts.signing ?? hostSigning({ root: paths.root, configFile, override: opts.trustOverride ?? null, logger }),
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
