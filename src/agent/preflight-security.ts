/**
 * The peer's checks, before anything is frozen, that it can give a container
 * the same isolation it has on the source: its user namespace range, seccomp,
 * and the host device nodes a user namespace binds.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { ContainerConfig } from '../container/types.js';
import { userNamespacesAvailable, rangeHolder } from '../userns/ranges.js';

export interface Problem {
  check: string;
  message: string;
  fix: string;
}

function seccompAvailable(): boolean {
  try {
    return readFileSync('/proc/sys/kernel/seccomp/actions_avail', 'utf8').split(/\s+/).includes('errno');
  } catch {
    return false;
  }
}

export async function securityProblems(root: string, name: string, config: ContainerConfig): Promise<Problem[]> {
  const out: Problem[] = [];
  if (config.security?.seccomp.compiled && !seccompAvailable()) {
    out.push({ check: 'seccomp', message: 'the peer\'s kernel has no seccomp filters, which the container runs under', fix: 'move it to a host whose kernel has CONFIG_SECCOMP_FILTER' });
  }
  if (config.userns) {
    const r = config.userns;
    if (!userNamespacesAvailable()) {
      out.push({ check: 'userns', message: 'user namespaces are disabled on the peer, and the container runs in one', fix: 'enable them there (sysctl -w user.max_user_namespaces=15000)' });
    }
    const holder = await rangeHolder(root, r);
    if (holder !== undefined && holder !== name) {
      out.push({ check: 'userns', message: `the peer's container ${holder} holds ids ${r.start}..${r.start + r.size - 1}, the range ${name} runs in`, fix: `remove ${holder} on the peer, or move ${name} to another host` });
    }
    for (const n of config.security?.devices.nodes ?? []) {
      if (!existsSync(n.hostPath)) out.push({ check: 'device', message: `the peer has no ${n.hostPath}, which the container binds as ${n.path}`, fix: `make ${n.hostPath} on the peer, or move it elsewhere` });
    }
  }
  return out;
}
