/** Pure: the tsm-shim options that apply a security profile (native/shim/security.c). */
import { capabilityMask } from './capabilities.js';
import type { SecurityProfile } from './profile.js';

/** `seccompFile` is where the caller wrote seccompRulesText(profile.seccomp.compiled), if any. */
export function securityShimArgs(p: SecurityProfile, seccompFile: string | undefined): string[] {
  const a = ['--caps', capabilityMask(p.capabilities)];
  if (p.noNewPrivileges) a.push('--no-new-privs');
  if (p.seccomp.compiled && seccompFile !== undefined) a.push('--seccomp', seccompFile);
  return a;
}

/** The options for setting up the root filesystem (run mode only; CRIU restores mounts). */
export function rootfsShimArgs(p: SecurityProfile): string[] {
  const a: string[] = [];
  for (const m of p.maskedPaths) a.push('--mask', m);
  for (const r of p.readonlyPaths) a.push('--ro', r);
  if (p.cgroupNamespace) a.push('--cgroupns');
  if (!p.sysReadOnly) a.push('--sys-rw');
  for (const n of p.devices.nodes) a.push('--device-node', `${n.type}:${n.major}:${n.minor}:${n.mode.toString(8)}:${n.path}=${n.hostPath}`);
  return a;
}
