/**
 * Machine-wide IPv4 address management. One file per lease, named by the
 * address, in a lease directory shared by every state root on this machine
 * (several roots simulate several hosts sharing one bridge).
 *
 * A claim is atomic: the lease is written completely to a private temp file
 * and then hard-linked to its final name; link(2) fails with EEXIST exactly
 * like open(O_CREAT|O_EXCL), so two claimers can never both win, and a reader
 * never sees a half-written lease. Release, lending (lease-handover.ts) and
 * repair (lease-repair.ts) change an existing lease and are serialised per
 * address by a small lock directory.
 *
 * A lease has exactly one owner, named with its host (hostname and state
 * root). During a move it may be lent to the peer's held copy (`lentTo`);
 * ownership passes only at the commit. A lease claimed for an incoming
 * migration carries its id (`migration`) until that migration commits.
 */
import { promises as fs, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { TsmError, isTsmError } from '../errors/errors.js';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import {
  type Cidr,
  broadcastAddress,
  contains,
  formatCidr,
  formatIPv4,
  gatewayOf,
  nthHost,
  parseIPv4,
  usableCount,
} from './cidr.js';

export interface LeaseOwner {
  /** Absolute state root of the owning tsmigrate "host". */
  root: string;
  container: string;
}

/** A container that may hold an address for a migration it receives. */
export interface LeaseBorrower extends LeaseOwner {
  host: string;
  migration: string;
}

/** What a lease file holds. */
export interface LeaseRecord extends LeaseOwner {
  /** hostname of the machine whose state root `root` is ('' in leases written before it was recorded) */
  host: string;
  claimedAt: string;
  /** claimed for this incoming migration, not committed yet */
  migration?: string;
  /** lent to the peer's held copy of a move between two roots of this machine */
  lentTo?: LeaseBorrower;
}

export interface Lease extends LeaseRecord {
  ip: string;
}

/** released: deleted; returned: a borrower gave it back; handed-over: the owner let go of a lent lease, the borrower owns it */
export type ReleaseResult = 'released' | 'returned' | 'handed-over' | 'absent' | 'not-owner';

export const DEFAULT_IPAM_BASE = '/run/tsmigrate/ipam';

/** The lease directory for a subnet: `<base>/<subnet with / replaced by _>`. */
export function leaseDirFor(subnet: string, base: string = DEFAULT_IPAM_BASE): string {
  return path.join(base, subnet.replace(/\//g, '_'));
}

export function sameOwner(a: LeaseOwner, b: LeaseOwner): boolean {
  return path.resolve(a.root) === path.resolve(b.root) && a.container === b.container;
}

/** Whether `who` may use the address: it owns the lease or borrows it. */
export function holds(l: LeaseRecord, who: LeaseOwner): boolean {
  return sameOwner(l, who) || (l.lentTo !== undefined && sameOwner(l.lentTo, who));
}

export function describeOwner(l: LeaseOwner): string {
  if (!l.container) return 'an unknown owner (unreadable lease file)';
  return `container '${l.container}' (state root ${l.root})`;
}

function normOwner(o: LeaseOwner): LeaseOwner {
  return { root: path.resolve(o.root), container: o.container };
}

export function leaseFile(leaseDir: string, ip: string): string {
  return path.join(leaseDir, ip);
}

function checkIpName(ip: string): void {
  if (parseIPv4(ip) === undefined) {
    throw new TsmError('EINVAL_ARG', `'${ip}' is not an IPv4 address`, { fix: 'pass a dotted-quad address such as 10.88.0.2' });
  }
}

/** Read one lease. Undefined when free. An unreadable file still counts as taken (owner fields empty). */
export async function readLease(leaseDir: string, ip: string): Promise<Lease | undefined> {
  checkIpName(ip);
  let rec: Partial<LeaseRecord> | undefined;
  try {
    rec = await readJsonIfExists<Partial<LeaseRecord>>(leaseFile(leaseDir, ip));
    if (rec === undefined) return undefined;
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    rec = {};
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  const lent = rec?.lentTo;
  return {
    ip,
    root: str(rec?.root),
    host: str(rec?.host),
    container: str(rec?.container),
    claimedAt: str(rec?.claimedAt),
    ...(typeof rec?.migration === 'string' ? { migration: rec.migration } : {}),
    ...(lent && typeof lent === 'object'
      ? { lentTo: { root: str(lent.root), host: str(lent.host), container: str(lent.container), migration: str(lent.migration) } }
      : {}),
  };
}

/** The record a lease file holds (no address). */
export function recordOf(l: LeaseRecord): LeaseRecord {
  return {
    root: l.root,
    host: l.host,
    container: l.container,
    claimedAt: l.claimedAt,
    ...(l.migration !== undefined ? { migration: l.migration } : {}),
    ...(l.lentTo ? { lentTo: { ...l.lentTo } } : {}),
  };
}

/** Names of leased addresses in the directory (temp and lock files skipped). */
async function leasedNames(leaseDir: string): Promise<string[]> {
  try {
    return (await fs.readdir(leaseDir)).filter((n) => parseIPv4(n) !== undefined);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** All leases, sorted by address. */
export async function listLeases(leaseDir: string): Promise<Lease[]> {
  const out: Lease[] = [];
  for (const ip of await leasedNames(leaseDir)) {
    const l = await readLease(leaseDir, ip);
    if (l) out.push(l);
  }
  return out.sort((a, b) => parseIPv4(a.ip)! - parseIPv4(b.ip)!);
}

/**
 * Try to claim `ip` for `owner` (for an incoming `migration`). True when
 * claimed now or already held (owned or borrowed) by the same owner; false
 * when held by someone else. Does no subnet validation.
 */
export async function tryClaimLease(leaseDir: string, ip: string, owner: LeaseOwner, migration?: string): Promise<boolean> {
  checkIpName(ip);
  const o = normOwner(owner);
  await fs.mkdir(leaseDir, { recursive: true, mode: 0o755 });
  const record: LeaseRecord = { root: o.root, host: os.hostname(), container: o.container, claimedAt: new Date().toISOString(), ...(migration ? { migration } : {}) };
  const tmp = path.join(leaseDir, `.${ip}.claim.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await fh.writeFile(JSON.stringify(record, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.link(tmp, leaseFile(leaseDir, ip));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const held = await readLease(leaseDir, ip);
    // Released between our link and our read: try once more.
    if (held === undefined) return tryClaimLease(leaseDir, ip, owner, migration);
    return holds(held, o);
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(leaseDir);
  return true;
}

export interface AllocateRequest {
  leaseDir: string;
  subnet: Cidr;
  owner: LeaseOwner;
  /** Explicit address (from --ip); undefined = lowest free. */
  requestedIp?: string | undefined;
  /** the incoming migration the address is claimed for (the claim is settled at its commit) */
  migration?: string | undefined;
}

/**
 * Why an explicit address cannot be used in the subnet (network, broadcast,
 * gateway, outside, not IPv4), or undefined when it is acceptable. Pure.
 */
export function explicitIpProblem(subnet: Cidr, requested: string): string | undefined {
  const ip = parseIPv4(requested);
  const s = formatCidr(subnet);
  if (ip === undefined) return `--ip '${requested}' is not an IPv4 address`;
  if (!contains(subnet, ip)) return `--ip ${requested} is outside the subnet ${s}`;
  if (ip === subnet.network) return `--ip ${requested} is the network address of ${s}`;
  if (ip === broadcastAddress(subnet)) return `--ip ${requested} is the broadcast address of ${s}`;
  if (ip === gatewayOf(subnet)) return `--ip ${requested} is the gateway of ${s} (the bridge's own address)`;
  return undefined;
}

/**
 * Claim an address for `owner`: the requested one (validated) or the lowest
 * free one. A container holds at most one lease: if the owner already holds
 * one (a stale lease from an earlier run), automatic allocation reuses it and
 * an explicit claim releases the others.
 */
export async function allocateLease(req: AllocateRequest): Promise<string> {
  const { leaseDir, subnet } = req;
  const owner = normOwner(req.owner);
  const s = formatCidr(subnet);
  const fix = `choose a free address in ${s} or omit --ip`;
  const mine = (await listLeases(leaseDir)).filter((l) => sameOwner(l, owner) && contains(subnet, parseIPv4(l.ip)!));

  if (req.requestedIp !== undefined) {
    const requested = req.requestedIp.trim();
    const problem = explicitIpProblem(subnet, requested);
    if (problem) throw new TsmError('EINVAL_ARG', problem, { fix });
    if (!(await tryClaimLease(leaseDir, requested, owner, req.migration))) {
      const held = await readLease(leaseDir, requested);
      throw new TsmError('ENETWORK', `--ip ${requested} is already leased to ${held ? describeOwner(held) : 'another container'}`, { fix });
    }
    for (const l of mine) if (l.ip !== requested) await releaseLease(leaseDir, l.ip, owner);
    return requested;
  }

  const reuse = mine[0];
  if (reuse) return reuse.ip;

  const taken = new Set(await leasedNames(leaseDir));
  const count = usableCount(subnet);
  // Host 1 is the gateway; containers start at host 2.
  for (let n = 2; n <= count; n++) {
    const ip = formatIPv4(nthHost(subnet, n)!);
    if (taken.has(ip)) continue;
    if (await tryClaimLease(leaseDir, ip, owner, req.migration)) return ip;
  }
  throw new TsmError('ENETWORK', `no free address left in ${s}`, {
    fix: 'remove unused containers, or use a larger subnet (TSMIGRATE_SUBNET) with its own bridge (TSMIGRATE_BRIDGE)',
  });
}

/** Serialise changes to one existing lease. The lock never waits, so retry EBUSY briefly. */
export async function withLeaseLock<T>(leaseDir: string, ip: string, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(leaseDir, { recursive: true, mode: 0o755 });
  const lockDir = path.join(leaseDir, `.${ip}.lock`);
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return await withLock(lockDir, `lease ${ip}`, fn);
    } catch (e) {
      if (!isTsmError(e, 'EBUSY') || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
  }
}

/** Replace a lease's record (undefined: delete it); call under withLeaseLock. */
export async function writeLease(leaseDir: string, ip: string, record: LeaseRecord | undefined): Promise<void> {
  if (record) await writeJsonAtomic(leaseFile(leaseDir, ip), record);
  else {
    await fs.rm(leaseFile(leaseDir, ip), { force: true });
    await fsyncDir(leaseDir);
  }
}

/**
 * Let go of `ip`. Never deletes a lease `who` does not own: a borrower gives
 * a lent lease back to its owner ('returned'); an owner letting go of a lent
 * lease hands it to the borrower, whose copy may be using it ('handed-over';
 * lease-repair.ts frees it if that copy's migration never committed).
 * Idempotent: a missing lease is 'absent'.
 */
export async function releaseLease(leaseDir: string, ip: string, who: LeaseOwner): Promise<ReleaseResult> {
  checkIpName(ip);
  if ((await readLease(leaseDir, ip)) === undefined) return 'absent';
  return withLeaseLock(leaseDir, ip, async () => {
    const held = await readLease(leaseDir, ip);
    if (held === undefined) return 'absent';
    const { lentTo, ...owned } = recordOf(held);
    if (lentTo && sameOwner(lentTo, who)) {
      await writeLease(leaseDir, ip, owned);
      return 'returned';
    }
    if (!sameOwner(held, who)) return 'not-owner';
    if (lentTo) {
      const { migration, ...borrower } = lentTo;
      await writeLease(leaseDir, ip, { ...borrower, claimedAt: new Date().toISOString(), migration });
      return 'handed-over';
    }
    await writeLease(leaseDir, ip, undefined);
    return 'released';
  });
}
