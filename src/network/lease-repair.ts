/**
 * Repair of address leases a crash left behind (run by `recover` on either
 * side of a move, and by the peer before it takes a container in). Facts are
 * gathered about each lease this state root has a part in, a pure planner
 * decides, and each change is applied only if the lease is still what was
 * planned on (compare and set under the lease's lock).
 *
 *   lent to a copy whose migration committed   -> passes to it
 *   lent to a copy whose migration aborted, or that this host never heard of
 *                                              -> back to its owner (freed if the owner is gone too)
 *   claimed for a migration that committed     -> settled (the tag goes)
 *   claimed for a migration that aborted or is unknown, its container gone
 *                                              -> freed
 *   owned by a container of this root that no longer exists -> freed
 *   a live container of this root whose address has no lease -> claimed for it again
 * Leases of other hosts and of migrations still under way are left alone.
 */
import path from 'node:path';
import {
  type Lease,
  type LeaseOwner,
  describeOwner,
  listLeases,
  readLease,
  recordOf,
  tryClaimLease,
  withLeaseLock,
  writeLease,
} from './ipam.js';

export type MigrationPhase = 'begun' | 'receiving' | 'prepared' | 'committed' | 'aborted' | 'unknown';

/** What the planner needs to know, gathered from the state roots on this machine. */
export interface LeaseFacts {
  /** the container's directory exists in that state root */
  containerExists(root: string, name: string): Promise<boolean>;
  /** the phase of an incoming migration in that state root */
  migrationPhase(root: string, id: string): Promise<MigrationPhase>;
  /** containers of `root` that are alive (running, frozen, held) with a bridge address */
  addressesInUse(root: string): Promise<Array<{ container: string; ip: string }>>;
}

/** One lease with the facts about it. */
export interface LeaseCase {
  lease: Lease;
  ownerExists: boolean;
  /** of lentTo.migration in the borrower's root, or of the lease's own migration in the owner's root */
  phase?: MigrationPhase;
}

export interface PlanInput {
  host: string;
  root: string;
  cases: LeaseCase[];
  inUse: Array<{ container: string; ip: string }>;
  /** addresses with no lease at all */
  unleased: string[];
}

export type RepairAction = 'pass' | 'return' | 'settle' | 'free' | 'reclaim';

export interface LeaseRepair {
  ip: string;
  action: RepairAction;
  /** the lease planned on (undefined for reclaim) */
  expected?: Lease;
  /** reclaim: for whom */
  owner?: LeaseOwner;
  migration?: string;
  container: string;
  /** 'peer' when the lease was held for a migration received here */
  side: 'source' | 'peer';
  why: string;
}

const LIVE: ReadonlySet<MigrationPhase> = new Set(['begun', 'receiving', 'prepared']);

/** Whether this host and root have a part in the lease (owner or borrower). */
export function concerns(l: Lease, host: string, root: string): boolean {
  if (l.host && l.host !== host) return false;
  if (!l.container) return false;
  const r = path.resolve(root);
  return l.root === r || l.lentTo?.root === r;
}

/** The repairs for what was found. Pure. */
export function planLeaseRepair(input: PlanInput): LeaseRepair[] {
  const out: LeaseRepair[] = [];
  const root = path.resolve(input.root);
  for (const c of input.cases) {
    const l = c.lease;
    if (!concerns(l, input.host, root)) continue;
    const base = { ip: l.ip, expected: l, container: l.container };
    if (l.lentTo) {
      const b = l.lentTo;
      const m = { migration: b.migration, side: b.root === root ? ('peer' as const) : ('source' as const) };
      if (c.phase === 'committed') {
        out.push({ ...base, ...m, action: 'pass', why: `migration ${b.migration} committed: the address passes to ${describeOwner(b)}` });
      } else if (c.phase !== undefined && !LIVE.has(c.phase)) {
        const why = `migration ${b.migration} ${c.phase === 'aborted' ? 'was aborted' : 'is unknown where it was restored'}`;
        out.push(
          c.ownerExists
            ? { ...base, ...m, action: 'return', why: `${why}: the address goes back to ${describeOwner(l)}` }
            : { ...base, ...m, action: 'free', why: `${why} and ${describeOwner(l)} no longer exists: the address is free` },
        );
      }
      continue;
    }
    if (l.root !== root) continue;
    if (l.migration !== undefined) {
      const m = { migration: l.migration, side: 'peer' as const };
      if (c.phase === 'committed') out.push({ ...base, ...m, action: 'settle', why: `migration ${l.migration} committed: ${describeOwner(l)} owns the address` });
      else if (c.phase !== undefined && !LIVE.has(c.phase) && !c.ownerExists) {
        out.push({ ...base, ...m, action: 'free', why: `claimed for migration ${l.migration}, which ${c.phase === 'aborted' ? 'was aborted' : 'this host does not know'}, and ${describeOwner(l)} no longer exists` });
      }
      continue;
    }
    if (!c.ownerExists) out.push({ ...base, side: 'source', action: 'free', why: `${describeOwner(l)} no longer exists: the address is free` });
  }
  const unleased = new Set(input.unleased);
  for (const u of input.inUse) {
    if (!unleased.has(u.ip)) continue;
    const owner = { root, container: u.container };
    out.push({ ip: u.ip, action: 'reclaim', owner, container: u.container, side: 'source', why: `${describeOwner(owner)} uses the address and had no lease: claimed for it again` });
  }
  return out;
}

/** The facts about every lease in `leaseDir` this root has a part in (`only`: that address alone). */
export async function gatherLeaseCases(leaseDir: string, host: string, root: string, facts: LeaseFacts, only?: string): Promise<PlanInput> {
  const cases: LeaseCase[] = [];
  const leases = (await listLeases(leaseDir)).filter((l) => only === undefined || l.ip === only);
  for (const l of leases) {
    if (!concerns(l, host, root)) continue;
    const migration = l.lentTo ? { root: l.lentTo.root, id: l.lentTo.migration } : l.migration !== undefined ? { root: l.root, id: l.migration } : undefined;
    cases.push({
      lease: l,
      ownerExists: await facts.containerExists(l.root, l.container),
      ...(migration ? { phase: await facts.migrationPhase(migration.root, migration.id) } : {}),
    });
  }
  const leased = new Set(leases.map((l) => l.ip));
  const inUse = (await facts.addressesInUse(root)).filter((u) => only === undefined || u.ip === only);
  return { host, root, cases, inUse, unleased: inUse.map((u) => u.ip).filter((ip) => !leased.has(ip)) };
}

/** Apply one repair if the lease is still as planned; true when it changed something. */
export async function applyLeaseRepair(leaseDir: string, r: LeaseRepair): Promise<boolean> {
  if (r.action === 'reclaim') return r.owner ? tryClaimLease(leaseDir, r.ip, r.owner) : false;
  return withLeaseLock(leaseDir, r.ip, async () => {
    const now = await readLease(leaseDir, r.ip);
    if (!now || !r.expected || JSON.stringify(recordOf(now)) !== JSON.stringify(recordOf(r.expected))) return false;
    const { lentTo, migration: _m, ...owned } = recordOf(now);
    if (r.action === 'free') await writeLease(leaseDir, r.ip, undefined);
    else if (r.action === 'return') await writeLease(leaseDir, r.ip, owned);
    else if (r.action === 'settle') await writeLease(leaseDir, r.ip, { ...owned, ...(lentTo ? { lentTo } : {}) });
    else if (r.action === 'pass' && lentTo) {
      const { migration: _b, ...borrower } = lentTo;
      await writeLease(leaseDir, r.ip, { ...borrower, claimedAt: new Date().toISOString() });
    } else return false;
    return true;
  });
}

/** Gather, plan and apply; the repairs that changed something. */
export async function repairLeases(leaseDir: string, host: string, root: string, facts: LeaseFacts, o: { only?: string } = {}): Promise<LeaseRepair[]> {
  const plan = planLeaseRepair(await gatherLeaseCases(leaseDir, host, root, facts, o.only));
  const done: LeaseRepair[] = [];
  for (const r of plan) if (await applyLeaseRepair(leaseDir, r)) done.push(r);
  return done;
}
