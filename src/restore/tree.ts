import { deviceRestoreExternals } from '../security/criu-externals.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { logPolicyOf } from '../container/log-files.js';
import { readOomRecord } from '../container/oom.js';
import { runningFacts } from '../container/running.js';
import { readTtyStdio, stdioInheritFds, type StdioKeys } from '../container/stdio.js';
import type { ContainerConfig, ContainerRuntimeState } from '../container/types.js';
import { assertApplicable } from '../cgroup/support.js';
import { restoreArgv } from '../criu/argv.js';
import type { CriuBinary } from '../criu/binary.js';
import { formatCriuDeadline, planCriuDeadline, type CriuDeadlineSettings } from '../criu/deadline.js';
import { CriuError, explainCriuFailure, stoppedCriuFailure } from '../criu/errors.js';
import { keepCriuLog } from '../criu/kept-logs.js';
import { removeCriuMntnsDirs, unmountCriuYard } from '../criu/leftovers.js';
import { filesBytes, killGroup, watchCriu, type CriuWatch } from '../criu/watchdog.js';
import { lendLease } from '../network/lease-handover.js';
import { planNetwork, releaseNetwork, type NetworkPlan } from '../network/setup.js';
import { mountRootfs, rootfsLayout, unmountRootfs } from '../rootfs/overlay.js';
import type { Runtime } from '../runtime/context.js';
import { startShim } from '../shim/spawn.js';
import { shimPath } from '../shim/locate.js';
import { macForIp } from '../network/veth.js';
import { supervisorArgs } from '../shim/supervisor-args.js';
import { UndoStack } from '../util/undo.js';
import { writeSeccompRules } from '../security/resolve.js';
import { handImagesToNamespace, reserveRange } from '../userns/ranges.js';
import { readdMoveIp } from './network-fixup.js';

export interface RestoreTreeOptions {
  config: ContainerConfig;
  /** the network as dumped (its IP is kept unless clone) */
  dumped: NetworkPlan | null;
  clone: boolean;
  /** on one machine (local test hosts) the source's lease, lent to the restored copy for `migrationId` */
  leaseOwner: { root: string; container: string } | null;
  /** the incoming migration this restore is for: the address is lent or claimed for it (network/lease-handover.ts) */
  migrationId?: string;
  stdio: StdioKeys;
  criuOptions: { tcpEstablished: boolean; fileLocks: boolean };
  imageRootfs: string;
  /** an unpacked CRIU image directory */
  imagesDir: string;
  criu: CriuBinary;
  /** extra state to record (e.g. the move's epoch) */
  extraState?: Partial<ContainerRuntimeState>;
  /** CRIU asks the streamer serving imagesDir for the images (transfer/stream-serve.ts) */
  stream?: boolean;
  /** CRIU's deadline (default: the runtime's setting) */
  criuDeadline?: CriuDeadlineSettings;
  /** the images' total size (default: what imagesDir holds now) */
  imagesBytes?: number;
  /**
   * Restoring while the images arrive: settles when the last of them did.
   * The hard deadline counts from then (the transfer has its own pace); the
   * stall watchdog watches throughout, the arriving images being progress.
   */
  imagesComplete?: Promise<unknown>;
}

/** A restored process tree, held stopped until resume(). */
export interface HeldContainer {
  initPid: number;
  shimPid: number;
  /** where the restore's time went: set-up (cgroups, rootfs, network), CRIU, records after it */
  timings: { setupMs: number; criuMs: number; afterMs: number };
  /** performance.now() when CRIU had restored the tree (its exit) */
  restoredAt: number;
  resume(): Promise<void>;
  /** kill the tree and remove everything restoreTree created (not the container dir itself) */
  rollback(): Promise<void>;
}

/**
 * Recreate a container around an existing directory (<root>/containers/NAME with
 * rootfs/upper already filled): cgroups with the same limits, the overlay rootfs,
 * the network, then `criu restore` as the child of a new tsm-shim, held stopped.
 */
export async function restoreTree(rt: Runtime, o: RestoreTreeOptions): Promise<HeldContainer> {
  const name = o.config.name;
  const undo = new UndoStack(rt.logger);
  const dir = rt.paths.container(name);
  const cg = rt.cgroups(name);
  const t0 = performance.now();
  await assertApplicable(cg, o.config.limits);
  try {
    await rt.store.saveConfig(o.config);
    // CRIU's images and the upper layer's files carry the container's host ids: the same range here
    if (o.config.userns) await reserveRange(rt.paths.root, name, o.config.userns);
    const layout = rootfsLayout(dir, o.imageRootfs, o.config.userns);
    const state: ContainerRuntimeState = { status: 'creating', cgroupParent: rt.cgroupParent, rootfs: layout, ...o.extraState };
    await rt.store.saveState(name, state);

    await cg.create();
    undo.push('remove cgroups', async () => {
      await cg.killAll('SIGKILL').catch(() => undefined);
      await cg.destroy();
    });
    await cg.apply(o.config.limits);
    // CRIU restores the processes' capabilities, no_new_privs, filters and mounts; the devices cgroup and exec's filter are ours
    if (o.config.security) {
      await cg.applyDevices(o.config.security.devices.rules);
      await writeSeccompRules(dir, o.config.security);
    }
    await mountRootfs(layout, rt.tools.shim);
    undo.push('unmount rootfs', () => unmountRootfs(layout));

    const owner = { root: rt.paths.root, container: name };
    const ip = o.clone ? undefined : o.dumped?.ip;
    // the source keeps owning its address until the commit: borrowed here, or claimed in this host's own lease directory
    if (ip && o.leaseOwner && o.migrationId && rt.network.leaseDir) await lendLease(rt.network.leaseDir, ip, o.leaseOwner, owner, o.migrationId);
    const net = await planNetwork(o.config.net.mode, ip, owner, rt.network, o.migrationId);
    // gives a borrowed address back, deletes one claimed here
    undo.push('release network', () => releaseNetwork(net, rt.network));

    // in a user namespace CRIU cannot recreate the veth: it makes the namespace empty and the shim, as its action script, wires it
    const wireNetns = Boolean(o.config.userns) && net.mode === 'bridge' && net.hostVeth !== undefined && net.bridge !== undefined;
    const netSetup = wireNetns ? [`${net.hostVeth},${net.bridge},${net.ip}/${net.prefix},${net.gateway},${macForIp(net.ip!)}`] : [];
    const pidfile = path.join(o.imagesDir, '..', `restored-${name}.pid`);
    const tcp = o.criuOptions.tcpEstablished;
    const argv = restoreArgv({
      imagesDir: o.imagesDir,
      logFile: 'restore.log',
      root: layout.merged,
      pidfile,
      detached: true,
      sibling: true,
      leaveStopped: true,
      tcpEstablished: tcp && !o.clone,
      tcpClose: tcp && o.clone,
      fileLocks: o.criuOptions.fileLocks,
      manageCgroups: 'soft',
      cgroupRoot: `/${rt.cgroupParent}/${name}`,
      inheritFds: stdioInheritFds(o.stdio),
      externals: [...(!wireNetns && net.mode === 'bridge' && net.hostVeth && net.bridge ? [`veth[eth0]:${net.hostVeth}@${net.bridge}`] : []), ...deviceRestoreExternals(o.config)],
      ...(wireNetns ? { emptyNetns: true, actionScript: shimPath(rt.tools.shim) } : {}),
      stream: Boolean(o.stream),
    });
    // the restored tasks read some images from inside the new user namespace (see handImagesToNamespace)
    if (o.config.userns && !o.stream) await handImagesToNamespace(o.imagesDir);
    await rt.store.clearExit(name);
    const settings = o.criuDeadline ?? rt.criuDeadline;
    const deadline = planCriuDeadline(settings, { memoryBytes: o.imagesBytes ?? (await filesBytes(o.imagesDir)) });
    const logPath = path.join(o.imagesDir, 'restore.log');
    let watch: CriuWatch | undefined;
    const watchCriuRun = (pid: number) =>
      (watch = watchCriu({
        deadline,
        sources: { logPath, imagesDir: o.imagesDir, pid, cgroupCpuNs: async () => (await cg.stats()).cpuUsageNs },
        // CRIU leads its own process group (native/shim/restore.c); the shim kills what it restored
        kill: () => killGroup(pid),
        ...(o.imagesComplete ? { hardFrom: o.imagesComplete } : {}),
      }));
    const tCriu = performance.now();
    // the log and the OOM record of the container's earlier life (restore in place, move) continue
    const supervisor = supervisorArgs({ log: logPolicyOf(o.config), oomFile: cg.oomKillFile(), oomKillsBefore: (await readOomRecord(dir))?.oomKills ?? 0 });
    const criuStarted = Date.now();
    const shim = await startShim(rt.tools.shim, 'restore', [...supervisor, ...(o.config.tty ? ['--tty'] : []), '--pidfile', pidfile, ...netSetup.flatMap((v) => ['--net-setup', v]), '--', o.criu.path, ...argv], dir, { watchCriu: watchCriuRun }).catch(async (e: Error) => {
      // the log is kept where the message says (kept-logs.ts): the images directory is removed by the caller
      const log = await fs.readFile(logPath, 'utf8').catch(() => '');
      const kept = log.trim() !== '' ? await keepCriuLog({ root: rt.paths.root, op: 'restore', container: name, text: log }) : undefined;
      const expiry = watch?.fired();
      // CRIU killed half-way: its cgroup yard is still mounted in the images directory, its mount namespace's directory is in /tmp
      if (expiry) {
        unmountCriuYard(o.imagesDir);
        await removeCriuMntnsDirs(criuStarted).catch(() => []);
      }
      const x = expiry
        ? stoppedCriuFailure(expiry, log, `everything the restore made was removed; if CRIU is only slow here, allow it more with --criu-deadline (now ${formatCriuDeadline(settings)})`)
        : explainCriuFailure('restore', log);
      throw new CriuError('restore', x, { ...(kept !== undefined ? { logPath: kept } : {}), cause: e });
    });
    const tRestored = performance.now();
    undo.push('kill restored tasks', async () => {
      await cg.killAll('SIGKILL').catch(() => undefined);
    });
    if (o.clone && net.mode === 'bridge') await readdMoveIp(shim.initPid, net);
    Object.assign(state, await runningFacts(shim, cg, net, false));
    // on disk as held ('creating' with its pids), so that a later agent can resume or roll it back
    await rt.store.saveState(name, { ...state, status: 'creating' });
    const round = (x: number) => Math.round(x * 10) / 10;
    return {
      initPid: shim.initPid,
      shimPid: shim.shimPid,
      timings: { setupMs: round(tCriu - t0), criuMs: round(tRestored - tCriu), afterMs: round(performance.now() - tRestored) },
      restoredAt: tRestored,
      resume: async () => {
        for (const pid of await cg.pids()) {
          try {
            process.kill(pid, 'SIGCONT');
          } catch {
            /* exited */
          }
        }
        // a pty's key is read from the resumed init; pipes came from the shim
        if (o.config.tty) {
          const stdio = await readTtyStdio(shim.initPid);
          if (stdio) state.stdio = stdio;
        }
        await rt.store.saveState(name, state);
      },
      rollback: () => undo.unwind(),
    };
  } catch (e) {
    await undo.unwind();
    throw e;
  }
}

