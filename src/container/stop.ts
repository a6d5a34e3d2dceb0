import { TsmError } from '../errors/errors.js';
import { releaseNetwork } from '../network/setup.js';
import { unmountRootfs } from '../rootfs/overlay.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { isSameProcess, waitFor } from './proc.js';
import { loadView } from './view.js';
import type { ContainerView } from './types.js';

/**
 * Stop: thaw if frozen (a frozen task cannot act on SIGTERM), SIGTERM the init,
 * wait `timeoutSec`, then SIGKILL everything in the cgroup. Then release what a
 * stopped container does not need (network, cgroups, the rootfs mount); its
 * upper layer and logs stay until rm.
 */
export async function stopContainer(rt: Runtime, name: string, timeoutSec = 10): Promise<ContainerView> {
  requireRoot('stop a container');
  return withLock(rt.store.lockDir(name), `container ${name}`, () => stopLocked(rt, name, timeoutSec));
}

export async function stopLocked(rt: Runtime, name: string, timeoutSec: number): Promise<ContainerView> {
  const view = await loadView(rt, name);
  const { state } = view;
  const cg = rt.cgroups(name);
  const alive = () => isSameProcess(state.initPid, state.initStartTime);
  if (await alive()) {
    if (view.status === 'frozen') await cg.thaw();
    if (timeoutSec > 0) {
      try {
        process.kill(state.initPid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await waitFor(async () => !(await alive()), timeoutSec * 1000, 25);
    }
    if (await alive()) {
      await cg.killAll('SIGKILL');
      try {
        process.kill(state.initPid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      if (!(await waitFor(async () => !(await alive()), 10000, 25))) {
        throw new TsmError('EBAD_STATE', `container "${name}" did not die after SIGKILL`, { fix: 'check for tasks stuck in D state (ps -o stat)' });
      }
    }
  }
  // the shim records exit.json once the init is reaped; give it a moment
  if (state.shimPid) await waitFor(async () => (await rt.store.exitInfo(name)) !== undefined || !(await pidAlive(state.shimPid!)), 3000, 20);
  await releaseResources(rt, name, view);
  state.status = 'stopped';
  await rt.store.saveState(name, state);
  return loadView(rt, name);
}

async function pidAlive(pid: number): Promise<boolean> {
  return isSameProcess(pid, undefined);
}

/** Everything outside the container's directory. Idempotent. */
export async function releaseResources(rt: Runtime, name: string, view: ContainerView): Promise<void> {
  const cg = rt.cgroups(name);
  if (await cg.exists()) {
    await cg.killAll('SIGKILL').catch(() => undefined);
    await cg.destroy();
  }
  if (view.state.network) await releaseNetwork(view.state.network, rt.network);
  await unmountRootfs(view.state.rootfs);
}
