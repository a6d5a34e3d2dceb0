/**
 * Container networking, as the CLI sees it:
 *   planNetwork    -> claims an address (the only side effect), before the init runs
 *   attachNetwork  -> bridge + veth + addresses (or just lo), before "go"
 *   releaseNetwork -> deletes the veth and releases the lease; idempotent
 */
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { assertIfName, ensureBridge } from './bridge.js';
import { type Cidr, formatCidr, formatIPv4, gatewayOf, parseContainerSubnet, parseIPv4, prefixMask, tryParseCidr } from './cidr.js';
import { DEFAULT_IPAM_BASE, type LeaseOwner, allocateLease, leaseDirFor, releaseLease } from './ipam.js';
import { attachVeth, deleteHostVeth, hostVethName, loopbackOnly } from './veth.js';

export interface NetworkSettings {
  /** Host bridge name (default tsm0). */
  bridge: string;
  /** Container subnet, canonical CIDR (default 10.88.0.0/16). */
  subnet: string;
  /** Directory holding this subnet's lease files. */
  leaseDir: string;
}

export const DEFAULT_BRIDGE = 'tsm0';
export const DEFAULT_SUBNET = '10.88.0.0/16';

export type NetMode = 'none' | 'bridge';
export const NET_MODES: readonly NetMode[] = ['none', 'bridge'];

export interface NetworkPlan {
  mode: NetMode;
  ip?: string;
  prefix?: number;
  gateway?: string;
  hostVeth?: string;
  bridge?: string;
  /** Subnet the lease was taken in (bridge mode). */
  subnet?: string;
  /** Lease directory the lease lives in (bridge mode); releaseNetwork prefers it over settings. */
  leaseDir?: string;
  owner: LeaseOwner;
}

/**
 * Settings from explicit values (e.g. a config file), falling back to the
 * defaults. The lease dir is `<ipamBase>/<subnet with / as _>` unless given.
 */
export function makeNetworkSettings(opts: { bridge?: string | undefined; subnet?: string | undefined; ipamBase?: string | undefined; leaseDir?: string | undefined } = {}): NetworkSettings {
  const bridge = opts.bridge || DEFAULT_BRIDGE;
  const raw = opts.subnet || DEFAULT_SUBNET;
  const c = tryParseCidr(raw.trim());
  const subnet = c ? formatCidr(c) : raw;
  const leaseDir = opts.leaseDir || leaseDirFor(subnet, opts.ipamBase || DEFAULT_IPAM_BASE);
  return { bridge, subnet, leaseDir };
}

/** Settings from TSMIGRATE_BRIDGE, TSMIGRATE_SUBNET and TSMIGRATE_IPAM_DIR (the lease base dir). Does not validate. */
export function defaultNetworkSettings(env: NodeJS.ProcessEnv = process.env): NetworkSettings {
  return makeNetworkSettings({
    bridge: env['TSMIGRATE_BRIDGE'],
    subnet: env['TSMIGRATE_SUBNET'],
    ipamBase: env['TSMIGRATE_IPAM_DIR'],
  });
}

/** Throw a one-line EINVAL_ARG when the bridge name or subnet is unusable. */
export function validateNetworkSettings(s: NetworkSettings): void {
  assertIfName(s.bridge, 'bridge name');
  parseContainerSubnet(s.subnet, 'subnet');
  if (!s.leaseDir || !path.isAbsolute(s.leaseDir)) {
    throw new TsmError('EINVAL_ARG', `lease directory '${s.leaseDir}' is not an absolute path`, {
      fix: 'set TSMIGRATE_IPAM_DIR to an absolute directory',
    });
  }
}

/** Parse a --net value. */
export function parseNetMode(text: string): NetMode {
  if ((NET_MODES as readonly string[]).includes(text)) return text as NetMode;
  throw new TsmError('EINVAL_ARG', `--net '${text}' is not a network mode`, { fix: "use --net bridge or --net none" });
}

/**
 * Decide the container's network and claim its address (bridge mode). The
 * lease claim is the only side effect; nothing on the host changes yet.
 */
export async function planNetwork(
  mode: NetMode,
  requestedIp: string | undefined,
  owner: LeaseOwner,
  settings: NetworkSettings,
  /** an incoming migration the address is claimed for (lease-handover.ts) */
  migration?: string,
): Promise<NetworkPlan> {
  const o: LeaseOwner = { root: path.resolve(owner.root), container: owner.container };
  if (mode === 'none') {
    if (requestedIp !== undefined) {
      throw new TsmError('EINVAL_ARG', '--ip needs --net bridge (a --net none container has only loopback)', {
        fix: 'drop --ip or use --net bridge',
      });
    }
    return { mode: 'none', owner: o };
  }
  if (mode !== 'bridge') parseNetMode(String(mode));
  validateNetworkSettings(settings);
  const subnet = parseContainerSubnet(settings.subnet, 'subnet');
  const ip = await allocateLease({ leaseDir: settings.leaseDir, subnet, owner: o, requestedIp, migration });
  return {
    mode: 'bridge',
    ip,
    prefix: subnet.prefix,
    gateway: formatIPv4(gatewayOf(subnet)),
    hostVeth: hostVethName(o.root, o.container),
    bridge: settings.bridge,
    subnet: formatCidr(subnet),
    leaseDir: settings.leaseDir,
    owner: o,
  };
}

function subnetOfGateway(gateway: string, prefix: number): Cidr {
  const g = parseIPv4(gateway);
  if (g === undefined) throw incomplete('a valid gateway');
  return parseContainerSubnet(`${formatIPv4((g & prefixMask(prefix)) >>> 0)}/${prefix}`, 'subnet');
}

function incomplete(what: string): TsmError {
  return new TsmError('EINVAL_ARG', `network plan is missing ${what}`, { fix: 'plan the network with planNetwork before attaching it' });
}

/**
 * Wire up the namespace of `pid` (the container init's host pid) per the plan.
 * On failure nothing is left on the host except the lease (release it with
 * releaseNetwork).
 */
export async function attachNetwork(plan: NetworkPlan, pid: number): Promise<void> {
  if (plan.mode === 'none') {
    await loopbackOnly(pid);
    return;
  }
  if (plan.mode !== 'bridge') parseNetMode(String(plan.mode));
  const { ip, prefix, gateway, bridge } = plan;
  if (!ip) throw incomplete('an address');
  if (prefix === undefined) throw incomplete('a prefix');
  if (!gateway) throw incomplete('a gateway');
  if (!bridge) throw incomplete('a bridge');
  const subnet = plan.subnet !== undefined ? parseContainerSubnet(plan.subnet, 'subnet') : subnetOfGateway(gateway, prefix);
  if (formatIPv4(gatewayOf(subnet)) !== gateway) throw incomplete(`a consistent gateway (${gateway} is not the first host of ${formatCidr(subnet)})`);
  await ensureBridge(bridge, subnet);
  await attachVeth({ hostVeth: plan.hostVeth ?? hostVethName(plan.owner.root, plan.owner.container), bridge, pid, ip, prefix, gateway });
}

/**
 * Undo attachNetwork and planNetwork: delete the host veth (which deletes
 * the pair; missing is fine) and let go of the lease (ipam.ts releaseLease:
 * a borrowed lease goes back to its owner; someone else's is left alone).
 */
export async function releaseNetwork(plan: NetworkPlan, settings: NetworkSettings, log: Logger = silentLogger): Promise<void> {
  if (plan.mode !== 'bridge') return;
  const veth = plan.hostVeth ?? hostVethName(plan.owner.root, plan.owner.container);
  if (await deleteHostVeth(veth)) log.debug(`deleted veth ${veth}`);
  if (plan.ip) {
    const leaseDir = plan.leaseDir ?? settings.leaseDir;
    const r = await releaseLease(leaseDir, plan.ip, plan.owner);
    if (r === 'not-owner') log.debug(`lease ${plan.ip} now belongs to another container; left in place`);
    else if (r !== 'absent') log.debug(`lease ${plan.ip}: ${r}`);
  }
}
