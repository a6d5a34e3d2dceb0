/**
 * A container's security profile: what it keeps of root's power. Planned once
 * at `run` from the flags (pure), stored in the container's config, and so
 * carried by checkpoints and moves; tsm-shim applies it (shim-args.ts) and the
 * cgroup backends apply its device rules.
 */
import { TsmError } from '../errors/errors.js';
import { CAPABILITY_NAMES, resolveCapabilities, type CapabilityName } from './capabilities.js';
import { ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES, type DeviceNode, type DeviceRule } from './devices.js';
import { compileSeccomp, type CompiledSeccomp } from './seccomp.js';

export interface SecurityProfile {
  readonly privileged: boolean;
  /** kept in the bounding, effective and permitted sets; inheritable and ambient are empty */
  readonly capabilities: readonly CapabilityName[];
  readonly noNewPrivileges: boolean;
  /** source: 'default', 'unconfined' or the profile file given at run */
  readonly seccomp: { readonly source: string; readonly compiled?: CompiledSeccomp };
  readonly maskedPaths: readonly string[];
  readonly readonlyPaths: readonly string[];
  /** the container sees only its own cgroup */
  readonly cgroupNamespace: boolean;
  readonly sysReadOnly: boolean;
  readonly devices: { readonly rules: readonly DeviceRule[]; readonly nodes: readonly DeviceNode[] };
}

/** runc's and Podman's masked paths: files get /dev/null bound over them, directories an empty read-only tmpfs. */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/proc/interrupts', '/sys/firmware', '/sys/fs/selinux',
  '/sys/dev/block', '/sys/devices/virtual/powercap', '/sys/kernel/debug', '/sys/kernel/security',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface SecurityRequest {
  privileged: boolean;
  capAdd: readonly string[];
  capDrop: readonly string[];
  /** --security-opt values, e.g. 'seccomp=unconfined', 'no-new-privileges=false' */
  securityOpt: readonly string[];
  devices: ReadonlyArray<{ rule: DeviceRule; node: DeviceNode }>;
}

export interface SecurityOptions {
  seccomp: string;
  noNewPrivileges: boolean;
}

/** Pure: --security-opt values, Podman's spelling ('seccomp=…', 'no-new-privileges[=true|false]'; ':' for '=' too). */
export function parseSecurityOpts(opts: readonly string[]): SecurityOptions {
  const out: SecurityOptions = { seccomp: 'default', noNewPrivileges: true };
  const fix = 'use --security-opt seccomp=unconfined|/path/profile.json or --security-opt no-new-privileges[=true|false]';
  for (const raw of opts) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(raw);
    const key = m?.[1];
    const value = m?.[2];
    if (key === 'seccomp' && value !== undefined && value !== '') {
      if (value !== 'unconfined' && value !== 'default' && !value.startsWith('/')) {
        throw new TsmError('EINVAL_ARG', `--security-opt seccomp=${value}: give unconfined or an absolute path to a JSON profile`, { fix });
      }
      out.seccomp = value;
    } else if (key === 'no-new-privileges' && (value === undefined || value === 'true' || value === 'false')) {
      out.noNewPrivileges = value !== 'false';
    } else {
      throw new TsmError('EINVAL_ARG', `--security-opt ${JSON.stringify(raw)} is not understood`, { fix });
    }
  }
  return out;
}

/**
 * Pure: the profile for a request. `loadSeccomp(source)` gives the parsed JSON
 * of 'default' or a file (the caller reads it). --privileged keeps everything
 * and refuses to be mixed with narrowing flags.
 */
export function planSecurity(req: SecurityRequest, loadSeccomp: (source: string) => unknown): SecurityProfile {
  const opts = parseSecurityOpts(req.securityOpt);
  const extraDevices = { rules: req.devices.map((d) => d.rule), nodes: req.devices.map((d) => d.node) };
  if (req.privileged) {
    if (req.capDrop.length > 0 || opts.seccomp !== 'default') {
      throw new TsmError('EINVAL_ARG', '--privileged cannot be combined with --cap-drop or --security-opt seccomp=…', { fix: 'drop --privileged, or the narrowing flags' });
    }
    return {
      privileged: true, capabilities: [...CAPABILITY_NAMES], noNewPrivileges: false, seccomp: { source: 'unconfined' },
      maskedPaths: [], readonlyPaths: [], cgroupNamespace: false, sysReadOnly: false,
      devices: { rules: [...ALLOW_ALL_DEVICES], nodes: extraDevices.nodes },
    };
  }
  const capabilities = resolveCapabilities(req.capAdd, req.capDrop);
  const seccomp = opts.seccomp === 'unconfined' ? { source: 'unconfined' } : { source: opts.seccomp, compiled: compileSeccomp(loadSeccomp(opts.seccomp), capabilities) };
  return {
    privileged: false, capabilities, noNewPrivileges: opts.noNewPrivileges, seccomp,
    maskedPaths: [...DEFAULT_MASKED_PATHS], readonlyPaths: [...DEFAULT_READONLY_PATHS], cgroupNamespace: true, sysReadOnly: true,
    devices: { rules: [...DEFAULT_DEVICE_RULES, ...extraDevices.rules], nodes: extraDevices.nodes },
  };
}

/** Containers created before profiles existed ran with everything; they keep running that way. */
export const LEGACY_PROFILE: SecurityProfile = {
  privileged: true, capabilities: [...CAPABILITY_NAMES], noNewPrivileges: false, seccomp: { source: 'unconfined' },
  maskedPaths: [], readonlyPaths: [], cgroupNamespace: false, sysReadOnly: true,
  devices: { rules: [...ALLOW_ALL_DEVICES], nodes: [] },
};
