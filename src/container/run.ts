import { promises as fs } from 'node:fs';
import type { Limits } from '../cgroup/limits.js';
import { assertApplicable } from '../cgroup/support.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import { attachNetwork, planNetwork, releaseNetwork, type NetMode } from '../network/setup.js';
import { mountRootfs, rootfsLayout, unmountRootfs } from '../rootfs/overlay.js';
import type { Runtime } from '../runtime/context.js';
import { startShim } from '../shim/spawn.js';
import { supervisorArgs } from '../shim/supervisor-args.js';
import { withLock } from '../state/lock.js';
import { UndoStack } from '../util/undo.js';
import { validateName } from '../util/name.js';
import { resolveSecurity, writeSeccompRules, type SecurityFlags } from '../security/resolve.js';
import type { SecurityProfile } from '../security/profile.js';
import { allocateRange, releaseRange, userNamespacesAvailable, type IdRange } from '../userns/ranges.js';
import { rootfsShimArgs, securityShimArgs } from '../security/shim-args.js';
import { requireRoot } from '../util/root.js';
import { runningFacts } from './running.js';
import { DEFAULT_LOG_POLICY, logPolicyOf } from './log-files.js';
import type { ContainerConfig, ContainerRuntimeState, LogPolicy } from './types.js';

export interface RunRequest {
  name: string;
  image: string;
  command: string[];
  env: string[];
  workdir?: string;
  user?: { uid: number; gid: number };
  hostname?: string;
  limits: Limits;
  net: NetMode;
  ip?: string;
  security?: SecurityFlags;
  /** 'auto': a user namespace of its own (a fresh range of host ids) */
  userns?: 'auto' | 'host';
  /** container.log rotation (default: DEFAULT_LOG_POLICY) */
  log?: LogPolicy;
  /** -t: the init gets a pty (the supervisor logs it and relays it to `attach`) */
  tty?: boolean;
  /** the pty's size at start: the caller's terminal */
  ttySize?: { rows: number; cols: number };
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Pure: the config a run request makes. */
export function planConfig(req: RunRequest, image: { name: string; digest: string }, now: Date, security: SecurityProfile, userns?: IdRange): ContainerConfig {
  const env = [...req.env];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
  if (!env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${req.hostname ?? req.name}`);
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${req.user && req.user.uid !== 0 ? '/' : '/root'}`);
  if (req.tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
  return {
    name: req.name,
    image,
    command: req.command,
    env,
    workdir: req.workdir ?? '/',
    ...(req.user ? { user: req.user } : {}),
    hostname: req.hostname ?? req.name,
    limits: req.limits,
    net: { mode: req.net, ...(req.ip ? { ip: req.ip } : {}) },
    log: req.log ?? DEFAULT_LOG_POLICY,
    createdAt: now.toISOString(),
    security,
    ...(userns ? { userns } : {}),
    ...(req.tty ? { tty: true } : {}),
  };
}

/** Pure: the tsm-shim arguments for a config (oomFile: where its cgroup counts OOM kills; ttySize: a terminal's first size). */
export function shimRunArgs(c: ContainerConfig, rootfs: string, seccompFile: string | undefined, oomFile?: string, ttySize?: { rows: number; cols: number }): string[] {
  const a = ['--rootfs', rootfs, '--hostname', c.hostname, '--cwd', c.workdir];
  a.push(...supervisorArgs({ log: logPolicyOf(c), oomFile, oomKillsBefore: 0 }));
  if (c.user) a.push('--user', `${c.user.uid}:${c.user.gid}`);
  if (c.security) a.push(...securityShimArgs(c.security, seccompFile), ...rootfsShimArgs(c.security));
  if (c.userns) a.push('--userns', `${c.userns.start}:${c.userns.size}`);
  if (c.tty) a.push('--tty');
  if (c.tty && ttySize) a.push('--tty-size', `${ttySize.rows}x${ttySize.cols}`);
  for (const e of c.env) a.push('--env', e);
  return [...a, '--', ...c.command];
}

/** Create and start a container. Any failure removes everything it created. */
export async function runContainer(rt: Runtime, req: RunRequest): Promise<ContainerConfig> {
  validateName('container', req.name);
  if (req.command.length === 0) {
    throw new TsmError('EINVAL_ARG', 'no command given', { fix: 'put the command after --, e.g. tsmigrate run web1 --image busybox -- sleep 1000' });
  }
  requireRoot('run a container');
  const security = resolveSecurity(req.security ?? {});
  if (req.userns === 'auto' && !userNamespacesAvailable()) {
    throw new TsmError('EINVAL_ARG', '--userns auto: user namespaces are disabled on this host (user.max_user_namespaces is 0)', { fix: 'enable them (sysctl -w user.max_user_namespaces=15000) or run without --userns' });
  }
  await fs.mkdir(rt.paths.containers, { recursive: true, mode: 0o711 });
  return withLock(rt.store.lockDir(req.name), `container ${req.name}`, async () => {
    if (await fs.stat(rt.paths.container(req.name)).then(() => true, () => false)) {
      throw new TsmError('EEXIST_CONTAINER', `a container named "${req.name}" already exists`, {
        fix: `choose another name or remove it with tsmigrate rm -f ${req.name}`,
      });
    }
    const image = await resolveImage(rt.paths, req.image);
    const userns = req.userns === 'auto' ? await allocateRange(rt.paths.root, req.name) : undefined;
    const config = planConfig(req, { name: image.name, digest: image.digest }, new Date(), security, userns);
    return createAndStart(rt, config, image.rootfs, req.ttySize).catch(async (e: unknown) => {
      await releaseRange(rt.paths.root, req.name);
      throw e;
    });
  });
}

async function createAndStart(rt: Runtime, config: ContainerConfig, imageRootfs: string, ttySize?: { rows: number; cols: number }): Promise<ContainerConfig> {
  const undo = new UndoStack(rt.logger);
  const dir = rt.paths.container(config.name);
  const cg = rt.cgroups(config.name); // detects the cgroup layout: fails before any side effect
  await assertApplicable(cg, config.limits);
  try {
    await fs.mkdir(dir, { mode: 0o700 });
    undo.push('remove state', () => fs.rm(dir, { recursive: true, force: true }));
    await rt.store.saveConfig(config);
    const layout = rootfsLayout(dir, imageRootfs, config.userns);
    const state: ContainerRuntimeState = { status: 'creating', cgroupParent: rt.cgroupParent, rootfs: layout };
    await rt.store.saveState(config.name, state);

    await cg.create();
    undo.push('remove cgroups', () => cg.destroy());
    await cg.apply(config.limits);
    if (config.security) await cg.applyDevices(config.security.devices.rules);
    const seccompFile = config.security ? await writeSeccompRules(dir, config.security) : undefined;

    await mountRootfs(layout, rt.tools.shim);
    undo.push('unmount rootfs', () => unmountRootfs(layout));

    const net = await planNetwork(config.net.mode, config.net.ip, { root: rt.paths.root, container: config.name }, rt.network);
    undo.push('release network', () => releaseNetwork(net, rt.network));

    const shim = await startShim(rt.tools.shim, 'run', shimRunArgs(config, layout.merged, seccompFile, cg.oomKillFile(), ttySize), dir);
    undo.push('stop the container', async () => {
      try {
        process.kill(shim.initPid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await shim.abort();
      await cg.killAll('SIGKILL').catch(() => undefined);
    });
    await cg.addProcess(shim.initPid);
    await attachNetwork(net, shim.initPid);
    await shim.go();

    Object.assign(state, await runningFacts(shim, cg, net, { tty: Boolean(config.tty) }));
    await rt.store.saveState(config.name, state);
    undo.commit();
    rt.logger.info(`started ${config.name} (pid ${shim.initPid}${net.ip ? `, ip ${net.ip}` : ''})`);
    return config;
  } catch (e) {
    await undo.unwind();
    throw e;
  }
}

