import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { TsmError } from '../errors/errors.js';
import { isMountpoint } from '../native/native.js';
import { isSameProcess } from './proc.js';
import { releaseResources, stopLocked } from './stop.js';
import { assertAllowed, loadView } from './view.js';

/** rm [-f]: removes mounts, cgroups, network and state; nothing is left behind. */
export async function removeContainer(rt: Runtime, name: string, force: boolean): Promise<void> {
  requireRoot('remove a container');
  await withLock(rt.store.lockDir(name), `container ${name}`, async () => {
    if (!(await rt.store.exists(name))) {
      // a directory without a config is the remains of a crashed `run`
      const { existsSync } = await import('node:fs');
      if (!existsSync(rt.paths.container(name))) {
        throw new TsmError('ENOENT_CONTAINER', `no container named "${name}"`, { fix: 'list containers with tsmigrate ps' });
      }
      await rt.store.remove(name);
      return;
    }
    let view = await loadView(rt, name);
    if (!force) assertAllowed(view, 'rm');
    if (view.status === 'running' || view.status === 'frozen') view = await stopLocked(rt, name, 0);
    await releaseResources(rt, name, view);
    const { state } = view;
    if (state.shimPid) {
      try {
        process.kill(state.shimPid, 0);
        // the shim exits by itself once the init is gone; never leave it
        await new Promise((r) => setTimeout(r, 50));
      } catch {
        /* gone */
      }
    }
    // never drop the record of something still alive or mounted: it could not be found again
    if (await isSameProcess(state.initPid, state.initStartTime)) {
      throw new TsmError('EBAD_STATE', `container "${name}" is still running (pid ${state.initPid}) after being stopped`, { fix: 'check for tasks stuck in D state, then run rm -f again' });
    }
    if (isMountpoint(state.rootfs.merged)) {
      throw new TsmError('EMOUNT', `the root filesystem of "${name}" is still mounted at ${state.rootfs.merged}`, { fix: `find what holds it (fuser -m ${state.rootfs.merged}), then run rm -f again` });
    }
    await rt.store.remove(name);
    if ((await rt.store.names()).length === 0) await removeCgroupParents(rt);
  });
}

/** The per-state-root cgroup parent goes with the root's last container (rmdir: only if empty). */
async function removeCgroupParents(rt: Runtime): Promise<void> {
  if (rt.cgroupParent === 'tsmigrate') return; // the system-wide default stays
  const { promises: fs } = await import('node:fs');
  const path = await import('node:path');
  let paths: Record<string, string>;
  try {
    paths = rt.cgroups('x').paths;
  } catch {
    return;
  }
  for (const p of Object.values(paths)) await fs.rmdir(path.dirname(p)).catch(() => undefined);
}
