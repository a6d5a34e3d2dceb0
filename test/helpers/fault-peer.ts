import { copyFileSync } from 'node:fs';
import path from 'node:path';
import type { Rig } from './rig.js';

export interface FaultPeer {
  /** the peer's state root */
  root: string;
  /** re-register the peer with its agent run under TSMIGRATE_TEST_FAULT=fault (undefined: none) */
  setFault(fault: string | undefined): Promise<void>;
  /** run fn with the fault set, then without it again */
  withFault<T>(fault: string, fn: () => Promise<T>): Promise<T>;
}

/**
 * Start a rig peer and register it as host `name` of the state root `root`
 * (with the root's own copy of its host key); `tsm` runs the CLI on `root`.
 */
export async function addFaultPeer(rig: Rig, name: string, addr: string, root: string, tsm: (args: string[]) => Promise<unknown>): Promise<FaultPeer> {
  const h = await rig.start(name, addr);
  const cmd = [...h.addCommand];
  const k = cmd.indexOf('--known-hosts') + 1;
  copyFileSync(cmd[k]!, path.join(root, 'known_hosts'));
  cmd[k] = path.join(root, 'known_hosts');
  await tsm(cmd);
  const setFault = async (fault: string | undefined) => {
    await tsm(['host', 'rm', name]);
    const i = cmd.indexOf('--command') + 1;
    const faulty = [...cmd];
    if (fault) faulty[i] = `env TSMIGRATE_TEST_FAULT=${fault} ${cmd[i]}`;
    await tsm(faulty);
  };
  return {
    root: h.root,
    setFault,
    async withFault(fault, fn) {
      await setFault(fault);
      try {
        return await fn();
      } finally {
        await setFault(undefined);
      }
    },
  };
}
