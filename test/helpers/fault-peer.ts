import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './cli.js';
import { faultAgentCommand } from './fault-agent.js';
import type { Rig } from './rig.js';

export interface FaultPeer {
  /** the peer's state root */
  root: string;
  /** re-register the peer with the fault agent (fault-agent.ts) injecting this fault as its command (undefined: none) */
  setFault(fault: string | undefined): Promise<void>;
  /** run fn with the fault set, then without it again */
  withFault<T>(fault: string, fn: () => Promise<T>): Promise<T>;
  /** run fn with the peer's agent (and the CRIU it runs) under these environment variables */
  withAgentEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T>;
}

/** The environment that makes the peer's `criu restore` do `what` at CRIU action `at` (test/fixtures/criu-fault-action.sh). */
export function criuFaultEnv(dir: string, at: string, what: 'fail' | 'kill-agent'): Record<string, string> {
  const conf = path.join(dir, `criu-fault-${what}.conf`);
  writeFileSync(conf, `action-script ${path.join(REPO, 'test/fixtures/criu-fault-action.sh')}\n`);
  return { CRIU_CONFIG_FILE: conf, TSM_TEST_FAULT_AT: at, TSM_TEST_FAULT_DO: what };
}

/**
 * Start a rig peer and register it as host `name` of the state root `root`
 * (with the root's own copy of its host key); `tsm` runs the CLI on `root`.
 */
export async function addFaultPeer(rig: Rig, name: string, addr: string, root: string, tsm: (args: string[]) => Promise<unknown>): Promise<FaultPeer> {
  const h = await rig.start(name, addr, [root]);
  const cmd = [...h.addCommand];
  const k = cmd.indexOf('--known-hosts') + 1;
  copyFileSync(cmd[k]!, path.join(root, 'known_hosts'));
  cmd[k] = path.join(root, 'known_hosts');
  await tsm(cmd);
  const setEnv = async (vars: Record<string, string>, fault?: string) => {
    await tsm(['host', 'rm', name]);
    const i = cmd.indexOf('--command') + 1;
    const faulty = [...cmd];
    const assigns = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
    const agent = fault ? faultAgentCommand(h.root, [fault]) : cmd[i]!;
    faulty[i] = assigns.length ? `env ${assigns.join(' ')} ${agent}` : agent;
    await tsm(faulty);
  };
  const withAgentEnv = async <T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> => {
    await setEnv(vars);
    try {
      return await fn();
    } finally {
      await setEnv({});
    }
  };
  return {
    root: h.root,
    setFault: (fault) => setEnv({}, fault),
    withFault: async (fault, fn) => {
      await setEnv({}, fault);
      try {
        return await fn();
      } finally {
        await setEnv({});
      }
    },
    withAgentEnv,
  };
}
