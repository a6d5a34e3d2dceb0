import { execa } from 'execa';
import { isSameProcess, waitFor } from '../container/proc.js';
import { releaseResources } from '../container/stop.js';
import { loadView } from '../container/view.js';
import type { Runtime } from '../runtime/context.js';

/** Link up and thawed: the source copy runs as before the move. */
export async function runSourceCopyAgain(rt: Runtime, name: string): Promise<void> {
  if (!(await rt.store.exists(name))) return;
  const v = await loadView(rt, name);
  const veth = v.state.network?.mode === 'bridge' ? v.state.network.hostVeth : undefined;
  if (veth) await execa('ip', ['link', 'set', veth, 'up']).catch(() => undefined);
  if (v.status === 'frozen') await rt.cgroups(name).thaw();
}

/** The peer runs the container: kill and remove the frozen copy here. */
export async function removeSourceCopy(rt: Runtime, name: string): Promise<void> {
  if (!(await rt.store.exists(name))) return;
  const v = await loadView(rt, name);
  const cg = rt.cgroups(name);
  await cg.killAll('SIGKILL').catch(() => undefined);
  await cg.thaw().catch(() => undefined);
  await waitFor(async () => !(await isSameProcess(v.state.initPid, v.state.initStartTime)), 10000);
  await releaseResources(rt, name, await loadView(rt, name));
  await rt.store.remove(name);
}
