import type { CheckpointManifest } from '../checkpoint/manifest.js';
import type { ContainerConfig } from '../container/types.js';
import type { RestoreRequest as CriuRestoreRequest } from '../criu/argv.js';
import type { NetworkPlan } from '../network/setup.js';

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

/** Pure: the CRIU restore request for a plan. */
export function criuRestoreRequest(
  m: CheckpointManifest,
  plan: RestorePlan,
  o: { imagesDir: string; root: string; pidfile: string; cgroupRoot: string; network: NetworkPlan },
): CriuRestoreRequest {
  const tcp = m.criu.options.tcpEstablished;
  return {
    imagesDir: o.imagesDir,
    logFile: 'restore.log',
    root: o.root,
    pidfile: o.pidfile,
    detached: true,
    sibling: true,
    leaveStopped: true,
    tcpEstablished: tcp && !plan.clone,
    tcpClose: tcp && plan.clone,
    fileLocks: m.criu.options.fileLocks,
    manageCgroups: 'soft',
    cgroupRoot: o.cgroupRoot,
    inheritFds: [
      { fd: 3, key: m.stdio.stdout },
      { fd: 4, key: m.stdio.stderr },
    ],
    externals: o.network.mode === 'bridge' && o.network.hostVeth && o.network.bridge ? [`veth[eth0]:${o.network.hostVeth}@${o.network.bridge}`] : [],
  };
}
