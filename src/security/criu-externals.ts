/**
 * In a user namespace the container's device nodes are bind mounts of the
 * host's nodes (mknod is refused there), which CRIU sees as mounts from
 * outside the container: they are named to CRIU as externals on dump and
 * bound again from this host's nodes on restore. Pure.
 */
import type { ContainerConfig } from '../container/types.js';

const STANDARD_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

function nodes(c: Pick<ContainerConfig, 'userns' | 'security'>): Array<{ path: string; hostPath: string; key: string }> {
  if (!c.userns) return [];
  const all = [
    ...STANDARD_NODES.map((n) => ({ path: `/dev/${n}`, hostPath: `/dev/${n}` })),
    ...(c.security?.devices.nodes ?? []).map((n) => ({ path: n.path, hostPath: n.hostPath })),
  ];
  return all.map((n) => ({ ...n, key: `tsm-dev${n.path.slice('/dev'.length).replace(/[^A-Za-z0-9._-]/g, '_')}` }));
}

/** `--external mnt[/dev/null]:tsm-dev_null` ... for `criu dump`. */
export function deviceDumpExternals(c: Pick<ContainerConfig, 'userns' | 'security'>): string[] {
  return nodes(c).map((n) => `mnt[${n.path}]:${n.key}`);
}

/** `--external mnt[tsm-dev_null]:/dev/null` ... for `criu restore`. */
export function deviceRestoreExternals(c: Pick<ContainerConfig, 'userns' | 'security'>): string[] {
  return nodes(c).map((n) => `mnt[${n.key}]:${n.hostPath}`);
}

