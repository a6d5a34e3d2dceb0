/**
 * Pure IPv4 address math. Addresses are unsigned 32-bit numbers internally;
 * everything here is side-effect free and table-tested.
 */
import { TsmError } from '../errors/errors.js';

export interface Cidr {
  /** Network address (host bits zero), unsigned 32-bit. */
  readonly network: number;
  /** Prefix length 0..32. */
  readonly prefix: number;
}

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** Parse a dotted quad ("10.88.0.1"). Strict: four decimal octets, no leading zeros, no spaces. */
export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!OCTET.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n >>> 0;
}

export function isIPv4(text: string): boolean {
  return parseIPv4(text) !== undefined;
}

export function formatIPv4(n: number): string {
  const u = n >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 255}.${(u >>> 8) & 255}.${u & 255}`;
}

export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parse "a.b.c.d/p". Returns undefined when malformed. With `strict` (default),
 * host bits must be zero ("10.88.0.1/16" is rejected); otherwise they are masked off.
 */
export function tryParseCidr(text: string, strict = true): Cidr | undefined {
  const m = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (!m) return undefined;
  const addr = parseIPv4(m[1]!);
  const prefix = Number(m[2]);
  if (addr === undefined || prefix > 32) return undefined;
  const network = (addr & prefixMask(prefix)) >>> 0;
  if (strict && network !== addr) return undefined;
  return { network, prefix };
}

/** Parse a subnet, throwing a one-line EINVAL_ARG (naming `what`, e.g. "subnet") on bad input. */
export function parseCidr(text: string, what = 'subnet'): Cidr {
  const c = tryParseCidr(text, true);
  if (c) return c;
  const loose = tryParseCidr(text, false);
  if (loose) {
    throw new TsmError('EINVAL_ARG', `${what} '${text}' has host bits set`, {
      fix: `use the network address: ${formatCidr(loose)}`,
    });
  }
  throw new TsmError('EINVAL_ARG', `${what} '${text}' is not an IPv4 CIDR`, {
    fix: "write it as ADDRESS/PREFIX, e.g. '10.88.0.0/16'",
  });
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

export function broadcastAddress(c: Cidr): number {
  return (c.network | ~prefixMask(c.prefix)) >>> 0;
}

/** Number of addresses in the block (2^(32-prefix)). */
export function blockSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & prefixMask(c.prefix)) >>> 0) === c.network;
}

/**
 * Whether `ip` may be given to a host in `c`: inside the block and, for prefixes
 * up to /30, neither the network nor the broadcast address (/31 and /32 have
 * no such reserved addresses, RFC 3021).
 */
export function isUsable(c: Cidr, ip: number): boolean {
  if (!contains(c, ip)) return false;
  if (c.prefix >= 31) return true;
  return ip !== c.network && ip !== broadcastAddress(c);
}

/**
 * The n-th usable host (1-based): nthHost(10.88.0.0/16, 1) = 10.88.0.1.
 * Undefined when out of range.
 */
export function nthHost(c: Cidr, n: number): number | undefined {
  if (!Number.isInteger(n) || n < 1) return undefined;
  const first = c.prefix >= 31 ? c.network : c.network + 1;
  const ip = first + (n - 1);
  if (ip > 0xffffffff) return undefined;
  return isUsable(c, ip) ? ip >>> 0 : undefined;
}

/** Count of usable host addresses. */
export function usableCount(c: Cidr): number {
  return c.prefix >= 31 ? blockSize(c) : blockSize(c) - 2;
}

/** The gateway of a subnet: its first usable host. */
export function gatewayOf(c: Cidr): number {
  const g = nthHost(c, 1);
  if (g === undefined) throw new TsmError('EINVAL_ARG', `subnet ${formatCidr(c)} has no usable host`);
  return g;
}

/** Whether two blocks share at least one address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  const m = prefixMask(p);
  return ((a.network & m) >>> 0) === ((b.network & m) >>> 0);
}

/** Smallest and largest prefix we accept for a container subnet. */
export const MIN_SUBNET_PREFIX = 8;
export const MAX_SUBNET_PREFIX = 30;

/**
 * Validate a subnet meant for containers: a canonical CIDR with prefix /8../30,
 * not loopback, link-local, multicast or reserved space.
 */
export function parseContainerSubnet(text: string, source = 'subnet'): Cidr {
  const c = parseCidr(text, source);
  const fix = "choose a private range such as '10.88.0.0/16' (prefix /8 to /30)";
  if (c.prefix < MIN_SUBNET_PREFIX || c.prefix > MAX_SUBNET_PREFIX) {
    throw new TsmError('EINVAL_ARG', `${source} '${text}' must have a prefix between /${MIN_SUBNET_PREFIX} and /${MAX_SUBNET_PREFIX}`, { fix });
  }
  const forbidden: Array<[string, string]> = [
    ['0.0.0.0/8', 'the "this network" block'],
    ['127.0.0.0/8', 'loopback space'],
    ['169.254.0.0/16', 'link-local space'],
    ['224.0.0.0/4', 'multicast space'],
    ['240.0.0.0/4', 'reserved space'],
  ];
  for (const [block, label] of forbidden) {
    if (overlaps(c, tryParseCidr(block)!)) {
      throw new TsmError('EINVAL_ARG', `${source} '${text}' overlaps ${label} (${block})`, { fix });
    }
  }
  return c;
}
