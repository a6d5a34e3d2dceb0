import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { assertAllowed, loadView } from './view.js';

/** freeze/thaw through the freezer cgroup; returns when the kernel confirms (the manager bounds the wait). */
export async function freezeContainer(rt: Runtime, name: string, timeoutMs?: number): Promise<void> {
  requireRoot('freeze a container');
  await withLock(rt.store.lockDir(name), `container ${name}`, async () => {
    assertAllowed(await loadView(rt, name), 'freeze');
    await rt.cgroups(name).freeze(timeoutMs);
  });
}

export async function thawContainer(rt: Runtime, name: string, timeoutMs?: number): Promise<void> {
  requireRoot('thaw a container');
  await withLock(rt.store.lockDir(name), `container ${name}`, async () => {
    assertAllowed(await loadView(rt, name), 'thaw');
    await rt.cgroups(name).thaw(timeoutMs);
  });
}
