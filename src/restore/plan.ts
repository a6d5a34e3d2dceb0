import type { CheckpointManifest } from '../checkpoint/manifest.js';
import type { ContainerConfig } from '../container/types.js';

export interface RestorePlan {
  name: string;
  /** restored under a new name beside the original: new IP, TCP connections not carried */
  clone: boolean;
  config: ContainerConfig;
}

/** Pure: what a restore of `m` under `name` recreates. */
export function planRestore(m: CheckpointManifest, name: string | undefined, now: Date): RestorePlan {
  const target = name ?? m.container.name;
  const clone = target !== m.container.name;
  const net = clone ? { mode: m.container.net.mode } : { mode: m.container.net.mode, ...(m.network?.ip ? { ip: m.network.ip } : {}) };
  return {
    name: target,
    clone,
    config: { ...m.container, name: target, net, createdAt: clone ? now.toISOString() : m.container.createdAt },
  };
}
