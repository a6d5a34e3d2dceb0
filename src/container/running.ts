import type { CgroupManager } from '../cgroup/manager.js';
import type { NetworkPlan } from '../network/setup.js';
import { procStartTime } from './proc.js';
import { readStdio } from './stdio.js';
import type { ContainerRuntimeState } from './types.js';

/** The runtime facts of a container whose init now runs under a supervisor (after run or restore). */
export async function runningFacts(
  shim: { shimPid: number; initPid: number },
  cg: CgroupManager,
  net: NetworkPlan,
  /** read the init's stdio keys (after a run; a restored tree is read at resume) */
  stdio: { tty: boolean } | false,
): Promise<Partial<ContainerRuntimeState>> {
  const [keys, startTime] = await Promise.all([stdio ? readStdio(shim.initPid, stdio.tty) : undefined, procStartTime(shim.initPid)]);
  return {
    status: 'running',
    shimPid: shim.shimPid,
    initPid: shim.initPid,
    ...(startTime ? { initStartTime: startTime } : {}),
    startedAt: new Date().toISOString(),
    cgroupPaths: cg.paths,
    network: net,
    ...(keys ? { stdio: keys } : {}),
  };
}
