/**
 * The veth pair joining a container's network namespace to the host bridge.
 * The host end has a deterministic name so cleanup can find it from the
 * container's identity alone; the other end is created directly inside the
 * container's namespace as `eth0` (so it never clashes with host names).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { deleteLink, showLink } from './bridge.js';
import { ip, ipIn, netnsPath } from './exec.js';

/** Name of the host end of a container's veth: `tsm-` + 8 hex of sha256(root NUL name); 12 chars. */
export function hostVethName(root: string, container: string): string {
  const h = createHash('sha256').update(`${path.resolve(root)}\0${container}`).digest('hex');
  return `tsm-${h.slice(0, 8)}`;
}

/**
 * Pure: the container end's MAC address, derived from its IPv4 address (as
 * Docker does): locally administered, the same wherever the container is
 * restored, so neighbours' ARP caches stay right across a move.
 */
export function macForIp(ip: string): string {
  const b = ip.split('.').map((x) => Number(x).toString(16).padStart(2, '0'));
  return `02:88:${b.join(':')}`;
}

/** Name of the interface inside the container. */
export const CONTAINER_IFNAME = 'eth0';

/**
 * Refuse to configure a namespace that is not a separate one: if `pid` shared
 * our network namespace we would be reconfiguring the host.
 */
export async function assertSeparateNetns(pid: number): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 1) {
    throw new TsmError('EINVAL_ARG', `invalid container pid ${pid}`, { fix: 'pass the host pid of the container init' });
  }
  let theirs: string;
  try {
    theirs = await fs.readlink(netnsPath(pid));
  } catch (e) {
    throw new TsmError('ENETWORK', `cannot open the network namespace of pid ${pid}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      fix: 'make sure the container init is still running and tsmigrate runs as root',
      cause: e,
    });
  }
  const ours = await fs.readlink('/proc/self/ns/net');
  if (theirs === ours) {
    throw new TsmError('ENETWORK', `pid ${pid} shares the host network namespace; refusing to configure it`, {
      fix: 'start the container init with its own network namespace (CLONE_NEWNET)',
    });
  }
}

export interface VethConfig {
  hostVeth: string;
  bridge: string;
  pid: number;
  ip: string;
  prefix: number;
  gateway: string;
}

/**
 * Create the pair, attach the host end to the bridge, and configure the
 * container end: address, up, lo up, default route via the gateway. On
 * failure the host end (and with it the pair) is deleted again.
 */
export async function attachVeth(c: VethConfig): Promise<void> {
  await assertSeparateNetns(c.pid);
  const stale = await showLink(c.hostVeth);
  if (stale) {
    if (stale.linkinfo?.info_kind !== 'veth') {
      throw new TsmError('ENETWORK', `interface ${c.hostVeth} exists and is not a tsmigrate veth`, {
        fix: `remove or rename it (ip link del ${c.hostVeth})`,
      });
    }
    // Left over from an earlier run of the same container: the name is ours.
    await deleteLink(c.hostVeth);
  }
  await ip(['link', 'add', c.hostVeth, 'type', 'veth', 'peer', 'name', CONTAINER_IFNAME, 'address', macForIp(c.ip), 'netns', String(c.pid)],
    `make sure pid ${c.pid} has no ${CONTAINER_IFNAME} yet and runs as root`);
  try {
    await ip(['link', 'set', 'dev', c.hostVeth, 'master', c.bridge]);
    await ip(['link', 'set', 'dev', c.hostVeth, 'up']);
    await ipIn(c.pid, ['addr', 'add', `${c.ip}/${c.prefix}`, 'dev', CONTAINER_IFNAME]);
    await ipIn(c.pid, ['link', 'set', 'dev', CONTAINER_IFNAME, 'up']);
    await ipIn(c.pid, ['link', 'set', 'dev', 'lo', 'up']);
    await ipIn(c.pid, ['route', 'replace', 'default', 'via', c.gateway, 'dev', CONTAINER_IFNAME]);
  } catch (e) {
    await deleteLink(c.hostVeth).catch(() => undefined);
    throw e;
  }
}

/** Bring up only loopback inside the namespace (--net none). */
export async function loopbackOnly(pid: number): Promise<void> {
  await assertSeparateNetns(pid);
  await ipIn(pid, ['link', 'set', 'dev', 'lo', 'up']);
}

const HOST_VETH_RE = /^tsm-[0-9a-f]{8}$/;

/**
 * Delete a container's host veth (and so the pair). Missing is fine. Refuses
 * names that are not ours or links that are not veths, so a damaged state
 * file can never make us delete a host interface.
 */
export async function deleteHostVeth(name: string): Promise<boolean> {
  if (!HOST_VETH_RE.test(name)) {
    throw new TsmError('ENETWORK', `refusing to delete interface '${name}': not a tsmigrate veth name`, {
      fix: 'check the container state file; tsmigrate veths are named tsm-<8 hex>',
    });
  }
  const link = await showLink(name);
  if (!link) return false;
  if (link.linkinfo?.info_kind !== 'veth') {
    throw new TsmError('ENETWORK', `refusing to delete interface ${name}: it is a ${link.linkinfo?.info_kind ?? 'plain device'}, not a veth`, {
      fix: `inspect it with ip -d link show ${name}`,
    });
  }
  return deleteLink(name);
}
