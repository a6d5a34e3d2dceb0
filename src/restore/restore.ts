import { promises as fs } from 'node:fs';
import path from 'node:path';
import { unpackFileToTree } from '../archive/pack.js';
import type { CheckpointManifest } from '../checkpoint/manifest.js';
import { makeStagingDir, stagingBase } from '../checkpoint/staging.js';
import { CheckpointStore } from '../checkpoint/store.js';
import { fdPipe, procStartTime } from '../container/proc.js';
import { releaseResources } from '../container/stop.js';
import type { ContainerConfig, ContainerRuntimeState } from '../container/types.js';
import { loadView } from '../container/view.js';
import { restoreArgv } from '../criu/argv.js';
import { locateCriu } from '../criu/binary.js';
import { explainCriuFailure } from '../criu/errors.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import { planNetwork, releaseNetwork } from '../network/setup.js';
import { mountRootfs, rootfsLayout, unmountRootfs } from '../rootfs/overlay.js';
import type { Runtime } from '../runtime/context.js';
import { startShim } from '../shim/spawn.js';
import { withLock } from '../state/lock.js';
import { UndoStack } from '../util/undo.js';
import { validateName } from '../util/name.js';
import { requireRoot } from '../util/root.js';
import { readdMoveIp } from './network-fixup.js';
import { criuRestoreRequest, planRestore, type RestorePlan } from './plan.js';

export interface RestoreRequest {
  checkpoint: string;
  name?: string;
}

/**
 * Restore a verified checkpoint: recreate cgroups with the same limits, the
 * network, the overlay rootfs (image + the checkpoint's upper layer), then
 * `criu restore` into a fresh PID namespace as the child of a new supervisor,
 * held stopped until everything is in place, then resumed. Any failure removes
 * everything it created. Never a second copy of a running container.
 */
export async function restoreCheckpoint(rt: Runtime, req: RestoreRequest): Promise<{ config: ContainerConfig; manifest: CheckpointManifest; ms: number }> {
  requireRoot('restore a checkpoint');
  const t0 = performance.now();
  const store = new CheckpointStore(rt.paths);
  const criu = await locateCriu();
  const manifest = await store.assertVerified(req.checkpoint);
  const plan = planRestore(manifest, req.name, new Date());
  validateName('container', plan.name);
  return withLock(rt.store.lockDir(plan.name), `container ${plan.name}`, async () => {
    await fs.mkdir(rt.paths.containers, { recursive: true, mode: 0o711 });
    if (await rt.store.exists(plan.name)) {
      const view = await loadView(rt, plan.name);
      if (view.status !== 'exited') {
        throw new TsmError('EEXIST_CONTAINER', `container "${plan.name}" is ${view.status}: restoring it would make a second copy`, {
          fix: plan.clone ? 'choose another --name' : `stop and remove it first (tsmigrate rm -f ${plan.name}), or restore a clone with --name NEW`,
        });
      }
      // an exited container of that name (e.g. after checkpoint --stop) is replaced by the restore
      await releaseResources(rt, plan.name, view);
      await rt.store.remove(plan.name);
    }
    const image = await resolveImage(rt.paths, manifest.image.digest).catch(() => {
      throw new TsmError('ENOENT_IMAGE', `the checkpoint's image ${manifest.image.name} (${manifest.image.digest.slice(0, 19)}) is not on this host`, {
        fix: `import it first: tsmigrate image import ${manifest.image.name} DIR|TAR`,
      });
    });
    const config = await restoreInto(rt, manifest, plan, image.rootfs, criu, store);
    return { config, manifest, ms: performance.now() - t0 };
  });
}

async function restoreInto(
  rt: Runtime,
  m: CheckpointManifest,
  plan: RestorePlan,
  imageRootfs: string,
  criu: { path: string },
  store: CheckpointStore,
): Promise<ContainerConfig> {
  const undo = new UndoStack(rt.logger);
  const dir = rt.paths.container(plan.name);
  const cg = rt.cgroups(plan.name);
  const ckDir = store.path(m.id);
  let staging: string | undefined;
  try {
    await fs.mkdir(dir, { mode: 0o700 });
    undo.push('remove state', () => fs.rm(dir, { recursive: true, force: true }));
    await rt.store.saveConfig(plan.config);
    const layout = rootfsLayout(dir, imageRootfs);
    const state: ContainerRuntimeState = { status: 'creating', cgroupParent: rt.cgroupParent, rootfs: layout };
    await rt.store.saveState(plan.name, state);

    await cg.create();
    undo.push('remove cgroups', async () => {
      await cg.killAll('SIGKILL').catch(() => undefined);
      await cg.destroy();
    });
    await cg.apply(plan.config.limits);

    await fs.mkdir(path.dirname(layout.upper), { recursive: true, mode: 0o700 });
    await unpackFileToTree(path.join(ckDir, m.blobs.upper.file), layout.upper, { allowWhiteouts: true, refuseDevices: true });
    await mountRootfs(layout);
    undo.push('unmount rootfs', () => unmountRootfs(layout));

    const net = await planNetwork(plan.config.net.mode, plan.config.net.ip, { root: rt.paths.root, container: plan.name }, rt.network);
    undo.push('release network', () => releaseNetwork(net, rt.network));

    staging = await makeStagingDir(stagingBase(rt.paths.root, m.blobs.criu.size * 4), `restore-${plan.name}`);
    const images = path.join(staging, 'images');
    await unpackFileToTree(path.join(ckDir, m.blobs.criu.file), images, { refuseDevices: true });
    const pidfile = path.join(staging, 'restored.pid');
    const argv = restoreArgv(
      criuRestoreRequest(m, plan, { imagesDir: images, root: layout.merged, pidfile, cgroupRoot: `/${rt.cgroupParent}/${plan.name}`, network: net }),
    );
    await rt.store.clearExit(plan.name);
    const shim = await startShim('restore', ['--pidfile', pidfile, '--', criu.path, ...argv], dir).catch(async (e: Error) => {
      const log = await fs.readFile(path.join(images, 'restore.log'), 'utf8').catch(() => '');
      const kept = path.join(rt.paths.root, `restore-failed-${plan.name}-${Date.now()}.log`);
      await fs.writeFile(kept, log, { mode: 0o600 }).catch(() => undefined);
      const x = explainCriuFailure('restore', log);
      throw new TsmError('ECRIU', `restore of ${m.id} failed: ${x.message}`, { fix: `${x.fix} (CRIU log: ${kept})`, cause: e });
    });
    undo.push('kill restored tasks', async () => {
      await cg.killAll('SIGKILL').catch(() => undefined);
    });
    // the tree is held stopped: fix what differs for a clone, then let it run
    if (plan.clone && net.mode === 'bridge') await readdMoveIp(shim.initPid, net);
    for (const pid of await cg.pids()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* exited */
      }
    }
    const [stdout, stderr, startTime] = await Promise.all([fdPipe(shim.initPid, 1), fdPipe(shim.initPid, 2), procStartTime(shim.initPid)]);
    Object.assign(state, {
      status: 'running',
      shimPid: shim.shimPid,
      initPid: shim.initPid,
      initStartTime: startTime,
      startedAt: new Date().toISOString(),
      cgroupPaths: cg.paths,
      network: net,
      ...(stdout && stderr ? { stdio: { stdout, stderr } } : {}),
    } satisfies Partial<ContainerRuntimeState>);
    await rt.store.saveState(plan.name, state);
    undo.commit();
    return plan.config;
  } catch (e) {
    await undo.unwind();
    throw e;
  } finally {
    if (staging) await fs.rm(staging, { recursive: true, force: true });
  }
}
