import type { CgroupManager } from '../cgroup/manager.js';
import type { NetworkPlan } from '../network/setup.js';
import { procStartTime } from './proc.js';
import { readTtyStdio, type StdioKeys } from './stdio.js';
import type { ContainerRuntimeState } from './types.js';

/**
 * The runtime facts of a container whose init now runs under a supervisor
 * (after run or restore). Its stdio are the pipes the supervisor handed it
 * (reported by the shim), whatever the init did with its own descriptors
 * since; a pty's key is read from the init.
 */
export async function runningFacts(
  shim: { shimPid: number; initPid: number; stdio?: StdioKeys | undefined },
  cg: CgroupManager,
  net: NetworkPlan,
  /** read a pty's key from the init (after a run; a restored tree's is read at resume) */
  stdio: { tty: boolean } | false,
): Promise<Partial<ContainerRuntimeState>> {
  const [keys, startTime] = await Promise.all([
    shim.stdio ?? (stdio && stdio.tty ? readTtyStdio(shim.initPid) : undefined),
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
    ...(keys ? { stdio: keys } : {}),
  };
}
