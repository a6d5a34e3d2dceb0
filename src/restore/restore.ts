import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { declaredOf, limitsFor } from '../archive/limits.js';
import { unpackFileToTree } from '../archive/pack.js';
import type { CheckpointManifest } from '../checkpoint/manifest.js';
import { makeStagingDir, stagingBase } from '../checkpoint/staging.js';
import { CheckpointStore } from '../checkpoint/store.js';
import { moveHistory } from '../container/log-files.js';
import { releaseResources } from '../container/stop.js';
import type { ContainerConfig } from '../container/types.js';
import { loadView } from '../container/view.js';
import { locateCriu, type CriuBinary } from '../criu/binary.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import { rootfsLayout } from '../rootfs/overlay.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { validateName } from '../util/name.js';
import { requireRoot } from '../util/root.js';
import { planRestore, type RestorePlan } from './plan.js';
import { restoreTree } from './tree.js';
import { assertApplicable } from '../cgroup/support.js';

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
  const store = new CheckpointStore(rt.paths, rt.signing);
  const criu = await locateCriu(rt.tools.criu);
  const manifest = await store.assertVerified(req.checkpoint);
  const plan = planRestore(manifest, req.name, new Date());
  validateName('container', plan.name);
  return withLock(rt.store.lockDir(plan.name), `container ${plan.name}`, async () => {
    await fs.mkdir(rt.paths.containers, { recursive: true, mode: 0o711 });
    await assertApplicable(rt.cgroups(plan.name), plan.config.limits);
    const history = await replaceExited(rt, plan);
    try {
      const image = await resolveImage(rt.paths, manifest.image.digest).catch(() => {
        throw new TsmError('ENOENT_IMAGE', `the checkpoint's image ${manifest.image.name} (${manifest.image.digest.slice(0, 19)}) is not on this host`, {
          fix: `import it first: tsmigrate image import ${manifest.image.name} DIR|TAR`,
        });
      });
      const config = await restoreInto(rt, manifest, plan, image.rootfs, criu, store, history);
      return { config, manifest, ms: performance.now() - t0 };
    } finally {
      if (history) await fs.rm(history, { recursive: true, force: true });
    }
  });
}

/**
 * An exited container of the plan's name (e.g. after checkpoint --stop) is replaced by the
 * restore; restored in place (not as a clone, a new container) its log and OOM record go on:
 * they are kept aside in the returned directory. A live one is refused: never a second copy.
 */
async function replaceExited(rt: Runtime, plan: RestorePlan): Promise<string | undefined> {
  if (!(await rt.store.exists(plan.name))) return undefined;
  const view = await loadView(rt, plan.name);
  if (view.status !== 'exited') {
    throw new TsmError('EEXIST_CONTAINER', `container "${plan.name}" is ${view.status}: restoring it would make a second copy`, {
      fix: plan.clone ? 'choose another --name' : `stop and remove it first (tsmigrate rm -f ${plan.name}), or restore a clone with --name NEW`,
    });
  }
  await releaseResources(rt, plan.name, view);
  let history: string | undefined;
  if (!plan.clone) {
    history = path.join(rt.paths.containers, `.history-${plan.name}-${randomBytes(4).toString('hex')}`);
    await fs.mkdir(history, { mode: 0o700 });
    await moveHistory(rt.paths.container(plan.name), history);
  }
  await rt.store.remove(plan.name);
  return history;
}

async function restoreInto(
  rt: Runtime,
  m: CheckpointManifest,
  plan: RestorePlan,
  imageRootfs: string,
  criu: CriuBinary,
  store: CheckpointStore,
  /** the history files of the container this restore replaces */
  history: string | undefined,
): Promise<ContainerConfig> {
  const dir = rt.paths.container(plan.name);
  const ckDir = store.path(m.id);
  let staging: string | undefined;
  try {
    await fs.mkdir(dir, { mode: 0o700 });
    if (history) await moveHistory(history, dir);
    const upper = rootfsLayout(dir, imageRootfs).upper;
    await fs.mkdir(path.dirname(upper), { recursive: true, mode: 0o700 });
    const upperLimits = limitsFor('upper', declaredOf(m.blobs.upper));
    await unpackFileToTree(path.join(ckDir, m.blobs.upper.file), upper, { allowWhiteouts: true, refuseDevices: true, limits: upperLimits.tar, inflate: upperLimits.inflate, what: `the upper layer of checkpoint ${m.id}` });
    staging = await makeStagingDir(stagingBase(rt.paths.root, m.blobs.criu.size * 4, rt.tools.staging), `restore-${plan.name}`);
    const images = path.join(staging, 'images');
    const criuLimits = limitsFor('criu-images', declaredOf(m.blobs.criu));
    await unpackFileToTree(path.join(ckDir, m.blobs.criu.file), images, { refuseDevices: true, limits: criuLimits.tar, inflate: criuLimits.inflate, what: `the images of checkpoint ${m.id}` });
    const held = await restoreTree(rt, {
      config: plan.config,
      dumped: m.network,
      clone: plan.clone,
      leaseOwner: null,
      stdio: m.stdio,
      criuOptions: { tcpEstablished: m.criu.options.tcpEstablished, fileLocks: m.criu.options.fileLocks },
      imageRootfs,
      imagesDir: images,
      criu,
    });
    await held.resume();
    return plan.config;
  } catch (e) {
    await fs.rm(dir, { recursive: true, force: true });
    throw e;
  } finally {
    if (staging) await fs.rm(staging, { recursive: true, force: true });
  }
}
