/**
 * Linux capabilities by name, the default set a container keeps (Podman's),
 * and the pure arithmetic of --cap-add / --cap-drop.
 */
import { TsmError } from '../errors/errors.js';

/** Index = capability number (linux/capability.h). */
export const CAPABILITY_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
] as const;

export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** What a container keeps unless told otherwise (the set Podman's containers.conf ships). */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP',
  'SETUID', 'SYS_CHROOT',
];

/** 'net_admin', 'CAP_NET_ADMIN' and 'NET_ADMIN' name the same capability; 'ALL' is every one. */
export function parseCapability(raw: string, flag: string): CapabilityName | 'ALL' {
  const up = raw.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const name = up.startsWith('CAP_') ? up.slice(4) : up;
  if ((CAPABILITY_NAMES as readonly string[]).includes(name)) return name as CapabilityName;
  throw new TsmError('EINVAL_ARG', `${flag}: unknown capability ${JSON.stringify(raw)}`, {
    fix: `use a name such as NET_ADMIN or CAP_SYS_PTRACE, or ALL (known: ${CAPABILITY_NAMES.join(', ')})`,
  });
}

/**
 * The set a container keeps: the default set, less --cap-drop, plus --cap-add
 * (Podman's order: ALL in a drop empties the set first, then adds apply; ALL in
 * an add gives every capability). Sorted by capability number.
 */
export function resolveCapabilities(add: readonly string[], drop: readonly string[]): CapabilityName[] {
  const adds = add.map((c) => parseCapability(c, '--cap-add'));
  const drops = drop.map((c) => parseCapability(c, '--cap-drop'));
  let set = new Set<CapabilityName>(drops.includes('ALL') ? [] : DEFAULT_CAPABILITIES);
  for (const d of drops) if (d !== 'ALL') set.delete(d);
  if (adds.includes('ALL')) set = new Set(CAPABILITY_NAMES);
  for (const a of adds) if (a !== 'ALL') set.add(a);
  return CAPABILITY_NAMES.filter((c) => set.has(c));
}

/** The bit mask tsm-shim takes (--caps 0x...), as a hex string. */
export function capabilityMask(caps: readonly CapabilityName[]): string {
  let mask = 0n;
  for (const c of caps) mask |= 1n << BigInt(CAPABILITY_NAMES.indexOf(c));
  return `0x${mask.toString(16)}`;
}

/** Names of the bits set in a /proc/PID/status Cap* hex value. */
export function capabilitiesOfMask(hex: string): CapabilityName[] {
  const mask = BigInt(`0x${hex.replace(/^0x/, '')}`);
  return CAPABILITY_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}
