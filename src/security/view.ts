/** What `inspect` shows of a container's profile: as configured, and as the kernel reports it for the init. */
import { promises as fs } from 'node:fs';
import { capabilitiesOfMask, type CapabilityName } from './capabilities.js';
import { deviceRuleLine } from './devices.js';
import type { SecurityProfile } from './profile.js';

export interface ProcessSecurity {
  effective: CapabilityName[];
  bounding: CapabilityName[];
  inheritable: CapabilityName[];
  ambient: CapabilityName[];
  noNewPrivs: boolean;
  /** 0 disabled, 1 strict, 2 filter */
  seccompMode: number;
  seccompFilters: number;
}

/** Pure: the security lines of /proc/PID/status. */
export function parseProcStatusSecurity(status: string): ProcessSecurity {
  const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(status)?.[1] ?? '0';
  return {
    effective: capabilitiesOfMask(field('CapEff')),
    bounding: capabilitiesOfMask(field('CapBnd')),
    inheritable: capabilitiesOfMask(field('CapInh')),
    ambient: capabilitiesOfMask(field('CapAmb')),
    noNewPrivs: field('NoNewPrivs') === '1',
    seccompMode: Number(field('Seccomp')),
    seccompFilters: Number(field('Seccomp_filters')),
  };
}

export async function readProcessSecurity(pid: number): Promise<ProcessSecurity | null> {
  const text = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  return text === null ? null : parseProcStatusSecurity(text);
}

/** Pure: the profile without the filter's rules (counted instead), device rules as devices.allow lines. */
export function securitySummary(p: SecurityProfile): Record<string, unknown> {
  return {
    privileged: p.privileged,
    capabilities: p.capabilities,
    noNewPrivileges: p.noNewPrivileges,
    seccomp: { profile: p.seccomp.source, rules: p.seccomp.compiled?.rules.reduce((n, r) => n + r.names.length, 0) ?? 0 },
    maskedPaths: p.maskedPaths,
    readonlyPaths: p.readonlyPaths,
    cgroupNamespace: p.cgroupNamespace,
    sysReadOnly: p.sysReadOnly,
    devices: p.devices.rules.map(deviceRuleLine),
    deviceNodes: p.devices.nodes.map((n) => n.path),
  };
}
