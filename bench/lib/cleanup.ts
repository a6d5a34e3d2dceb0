import { promises as fs } from 'node:fs';
import path from 'node:path';
import { removeContainer } from '../../src/container/remove.js';
import type { Runtime } from '../../src/runtime/context.js';
import { mountsUnder } from './mounts.js';

/**
 * A bench's cleanup: every container left in the roots (a failed run may leave
 * one on the peer), then `between` (stopping the rig's hosts), then the roots'
 * cgroup parents (removeContainer leaves them, empty), `shm`, and `base`
 * unless something is still mounted beneath it.
 */
export async function cleanUpBench(rts: ReadonlyArray<Runtime | undefined>, o: { shm: string; base: string; between?: () => Promise<void> }): Promise<void> {
  for (const rt of rts) {
    if (!rt) continue;
    for (const n of await rt.store.names().catch(() => [] as string[])) {
      await removeContainer(rt, n, true).catch((e: Error) => console.error(`cannot remove ${n} in ${rt.paths.root}: ${e.message}`));
    }
  }
  await o.between?.();
  for (const rt of rts) {
    if (!rt) continue;
    for (const h of await fs.readdir('/sys/fs/cgroup').catch(() => [])) await fs.rmdir(path.join('/sys/fs/cgroup', h, rt.cgroupParent)).catch(() => undefined);
  }
  await fs.rm(o.shm, { recursive: true, force: true });
  const mounted = mountsUnder(o.base);
  if (mounted.length) console.error(`not removing ${o.base}: still mounted: ${mounted.join(', ')}`);
  else await fs.rm(o.base, { recursive: true, force: true });
}
