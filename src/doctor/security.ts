/** What `doctor` says of the kernel features a container's security profile uses. */
import { existsSync, readFileSync } from 'node:fs';
import type { Finding } from './doctor.js';

function readOr(file: string, dflt: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return dflt;
  }
}

export function securityFindings(): Finding[] {
  const out: Finding[] = [];
  const actions = readOr('/proc/sys/kernel/seccomp/actions_avail', '');
  const seccomp = actions.split(/\s+/).includes('errno');
  out.push({
    check: 'seccomp filters',
    ok: seccomp,
    detail: seccomp ? `available (${actions})` : 'the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)',
    ...(seccomp ? {} : { disables: 'the default seccomp profile (run refuses it; --security-opt seccomp=unconfined runs without)', fix: 'use a kernel built with CONFIG_SECCOMP_FILTER' }),
  });
  const cgns = existsSync('/proc/self/ns/cgroup');
  out.push({
    check: 'cgroup namespaces',
    ok: cgns,
    detail: cgns ? 'available' : 'no /proc/self/ns/cgroup',
    ...(cgns ? {} : { disables: 'hiding the host\'s cgroup tree from containers (the default profile needs it; --privileged runs without)', fix: 'use Linux 4.6 or newer with CONFIG_CGROUPS' }),
  });
  const maxUserns = Number(readOr('/proc/sys/user/max_user_namespaces', '0'));
  const userns = existsSync('/proc/self/ns/user') && maxUserns > 0;
  out.push({
    check: 'user namespaces',
    ok: userns,
    detail: userns ? `available (up to ${maxUserns})` : 'disabled (user.max_user_namespaces is 0 or CONFIG_USER_NS is off)',
    ...(userns ? {} : { disables: 'containers whose root is an unprivileged user on the host', fix: 'sysctl -w user.max_user_namespaces=15000' }),
  });
  return out;
}
