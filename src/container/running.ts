import type { CgroupManager } from '../cgroup/manager.js';
import type { NetworkPlan } from '../network/setup.js';
import { fdPipe, procStartTime } from './proc.js';
import type { ContainerRuntimeState } from './types.js';

/** The runtime facts of a container whose init now runs under a supervisor (after run or restore). */
export async function runningFacts(
  shim: { shimPid: number; initPid: number },
  cg: CgroupManager,
  net: NetworkPlan,
  withStdio: boolean,
): Promise<Partial<ContainerRuntimeState>> {
  const [stdout, stderr, startTime] = await Promise.all([
    withStdio ? fdPipe(shim.initPid, 1) : undefined,
    withStdio ? fdPipe(shim.initPid, 2) : undefined,
    procStartTime(shim.initPid),
  ]);
  return {
    status: 'running',
    shimPid: shim.shimPid,
    initPid: shim.initPid,
    ...(startTime ? { initStartTime: startTime } : {}),
    startedAt: new Date().toISOString(),
    cgroupPaths: cg.paths,
    network: net,
    ...(stdout && stderr ? { stdio: { stdout, stderr } } : {}),
  };
}
