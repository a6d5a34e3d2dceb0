/**
 * cgroup v2 has no devices files: access is decided by a BPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (as runc and systemd do).
 */
import { TsmError } from '../errors/errors.js';
import type { DeviceRule } from '../security/devices.js';

/** Attach (or replace) the device program of a v2 cgroup dir so that exactly `rules` are allowed. */
export async function attachDeviceFilter(cgroupDir: string, rules: readonly DeviceRule[]): Promise<void> {
  void rules;
  throw new TsmError('ECGROUP_MISSING', `cannot restrict devices in ${cgroupDir}: the cgroup v2 BPF device filter is not built yet`, {
    fix: 'run the container with --privileged on this host',
  });
}
