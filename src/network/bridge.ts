/**
 * The host bridge containers attach to. Created idempotently with the
 * gateway address (first host of the subnet). The host does not forward:
 * we never touch ip_forward, iptables or NAT, so traffic from a container
 * can reach only the bridge (the host) and other containers on it.
 */
import { TsmError } from '../errors/errors.js';
import { type Cidr, formatCidr, formatIPv4, gatewayOf, overlaps, tryParseCidr } from './cidr.js';
import { ip, ipQuiet, isNoSuchDevice, parseIpJson } from './exec.js';

/** Linux interface names: 1..15 bytes, no '/', ':', whitespace, not '.' or '..'. */
export function isValidIfName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

export function assertIfName(name: string, source = 'bridge name'): void {
  if (!isValidIfName(name)) {
    throw new TsmError('EINVAL_ARG', `${source} '${name}' is not a valid interface name`, {
      fix: "use 1-15 letters, digits, '-', '_' or '.', e.g. 'tsm0'",
    });
  }
}

interface LinkJson {
  ifname?: string;
  flags?: string[];
  operstate?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

interface AddrJson {
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
}

/** Details of a link, or undefined when it does not exist. */
export async function showLink(name: string): Promise<LinkJson | undefined> {
  const r = await ipQuiet(['-j', '-d', 'link', 'show', 'dev', name]);
  if (!r.ok) {
    if (isNoSuchDevice(r.stderr)) return undefined;
    throw new TsmError('ENETWORK', `ip link show ${name} failed: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
      fix: 'run as root with iproute2 installed',
    });
  }
  return parseIpJson<LinkJson>(r.stdout)[0];
}

export async function linkExists(name: string): Promise<boolean> {
  return (await showLink(name)) !== undefined;
}

/** IPv4 addresses (as "a.b.c.d/p") on a device. */
export async function ipv4AddrsOf(dev: string): Promise<string[]> {
  const out = await ip(['-j', '-4', 'addr', 'show', 'dev', dev]);
  const addrs: string[] = [];
  for (const l of parseIpJson<AddrJson>(out)) {
    for (const a of l.addr_info ?? []) {
      if (a.local !== undefined && a.prefixlen !== undefined) addrs.push(`${a.local}/${a.prefixlen}`);
    }
  }
  return addrs;
}

export interface RouteJson {
  dst?: string;
  dev?: string;
  type?: string;
}

/** Routes (as from `ip -j -4 route show`) on other devices whose destination overlaps `subnet`. Pure. */
export function findConflictingRoutes(routes: readonly RouteJson[], subnet: Cidr, bridge: string): string[] {
  const bad: string[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || r.dev === bridge) continue;
    const dst = tryParseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`, false);
    if (dst && overlaps(dst, subnet)) bad.push(`${r.dst} dev ${r.dev ?? '?'}`);
  }
  return bad;
}

async function conflictingRoutes(subnet: Cidr, bridge: string): Promise<string[]> {
  return findConflictingRoutes(parseIpJson<RouteJson>(await ip(['-j', '-4', 'route', 'show'])), subnet, bridge);
}

/**
 * Make sure `name` is an up bridge whose IPv4 address is the gateway of
 * `subnet` (and nothing else). Creates it when missing. Safe to run
 * concurrently from several processes.
 */
export async function ensureBridge(name: string, subnet: Cidr): Promise<void> {
  assertIfName(name);
  const s = formatCidr(subnet);
  const want = `${formatIPv4(gatewayOf(subnet))}/${subnet.prefix}`;

  let link = await showLink(name);
  if (link === undefined) {
    const conflicts = await conflictingRoutes(subnet, name);
    if (conflicts.length > 0) {
      throw new TsmError('ENETWORK', `subnet ${s} overlaps an existing host route (${conflicts.join(', ')})`, {
        fix: 'choose a subnet that is not in use on this machine (TSMIGRATE_SUBNET)',
      });
    }
    const r = await ipQuiet(['link', 'add', name, 'type', 'bridge']);
    if (!r.ok && !/File exists/i.test(r.stderr)) {
      throw new TsmError('ENETWORK', `could not create bridge ${name}: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
        fix: 'run as root; the kernel needs bridge support (modprobe bridge)',
      });
    }
    link = await showLink(name);
    if (link === undefined) {
      throw new TsmError('ENETWORK', `bridge ${name} vanished right after it was created`, { fix: 'try again' });
    }
  }
  if (link.linkinfo?.info_kind !== 'bridge') {
    throw new TsmError('ENETWORK', `interface ${name} exists but is a ${link.linkinfo?.info_kind ?? 'plain device'}, not a bridge`, {
      fix: 'choose another bridge name (TSMIGRATE_BRIDGE)',
    });
  }

  let addrs = await ipv4AddrsOf(name);
  if (addrs.length === 0) {
    const r = await ipQuiet(['addr', 'add', want, 'dev', name]);
    if (!r.ok && !/File exists/i.test(r.stderr)) {
      throw new TsmError('ENETWORK', `could not add ${want} to bridge ${name}: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
        fix: 'run as root; check `ip addr show dev ' + name + '`',
      });
    }
    addrs = await ipv4AddrsOf(name);
  }
  const others = addrs.filter((a) => a !== want);
  if (!addrs.includes(want) || others.length > 0) {
    throw new TsmError('ENETWORK', `bridge ${name} has address ${addrs.join(', ') || 'none'}, expected ${want} for subnet ${s}`, {
      fix: `set TSMIGRATE_SUBNET to the bridge's subnet, use another bridge (TSMIGRATE_BRIDGE), or delete it when unused (ip link del ${name})`,
    });
  }
  if (!link.flags?.includes('UP')) await ip(['link', 'set', 'dev', name, 'up']);
}

/** Delete a link; missing is fine. */
export async function deleteLink(name: string): Promise<boolean> {
  const r = await ipQuiet(['link', 'del', 'dev', name]);
  if (r.ok) return true;
  if (isNoSuchDevice(r.stderr)) return false;
  throw new TsmError('ENETWORK', `could not delete interface ${name}: ${r.stderr.trim().split('\n')[0] ?? ''}`, {
    fix: `delete it by hand: ip link del ${name}`,
  });
}
