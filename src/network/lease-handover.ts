/**
 * An address lease through a move. Between two state roots of one machine
 * (local test hosts sharing the lease directory) the source's lease is lent to
 * the peer's held copy: the source keeps owning it, so a rollback at any point
 * leaves it where it was. Ownership passes at the commit. Between machines the
 * peer claims the address in its own directory, tagged with the migration,
 * and the tag goes at the commit.
 *
 *   lendLease        the peer, before its restore (false: claim it instead)
 *   settleMigration  the peer, at the commit
 *   undoMigration    the peer, at an abort (also when no held tree is left)
 */
import os from 'node:os';
import path from 'node:path';
import { type LeaseOwner, type LeaseRecord, listLeases, readLease, recordOf, sameOwner, withLeaseLock, writeLease } from './ipam.js';

/**
 * Lend `ip`, owned by `owner`, to `borrower` for `migration`. False when
 * `owner` does not own it here (another lease directory, or someone else's).
 * A lend to an earlier migration is replaced: the owner moves one copy at a time.
 */
export async function lendLease(leaseDir: string, ip: string, owner: LeaseOwner, borrower: LeaseOwner, migration: string): Promise<boolean> {
  if ((await readLease(leaseDir, ip)) === undefined) return false;
  return withLeaseLock(leaseDir, ip, async () => {
    const held = await readLease(leaseDir, ip);
    if (!held || !sameOwner(held, owner)) return false;
    const b = { root: path.resolve(borrower.root), container: borrower.container };
    await writeLease(leaseDir, ip, { ...recordOf(held), lentTo: { ...b, host: os.hostname(), migration } });
    return true;
  });
}

/** What settling or undoing a migration's leases did, per address. */
export interface LeaseChange {
  ip: string;
  change: 'passed' | 'settled' | 'returned' | 'released';
}

/** The leases of `root` (as owner or borrower) tied to `migration`. */
async function leasesOf(leaseDir: string, root: string, migration: string) {
  const r = path.resolve(root);
  return (await listLeases(leaseDir)).filter(
    (l) => (l.lentTo?.migration === migration && l.lentTo.root === r) || (l.migration === migration && l.root === r),
  );
}

/** Rewrite each of the migration's leases with `next` (undefined: delete), re-read under the lock. */
async function rewrite(
  leaseDir: string,
  root: string,
  migration: string,
  next: (l: LeaseRecord, lent: boolean) => { record: LeaseRecord | undefined; change: LeaseChange['change'] },
): Promise<LeaseChange[]> {
  const out: LeaseChange[] = [];
  const r = path.resolve(root);
  for (const { ip } of await leasesOf(leaseDir, root, migration)) {
    await withLeaseLock(leaseDir, ip, async () => {
      const l = await readLease(leaseDir, ip);
      if (!l) return;
      const lent = l.lentTo?.migration === migration && l.lentTo.root === r;
      if (!lent && !(l.migration === migration && l.root === r)) return;
      const n = next(recordOf(l), lent);
      await writeLease(leaseDir, ip, n.record);
      out.push({ ip, change: n.change });
    });
  }
  return out;
}

/** The commit: a lent lease passes to the borrower, a claim for the migration loses its tag. */
export function settleMigration(leaseDir: string, root: string, migration: string): Promise<LeaseChange[]> {
  return rewrite(leaseDir, root, migration, (l, lent) => {
    if (lent) {
      const { migration: _m, ...borrower } = l.lentTo!;
      return { record: { ...borrower, claimedAt: new Date().toISOString() }, change: 'passed' };
    }
    const { migration: _m, ...settled } = l;
    return { record: settled, change: 'settled' };
  });
}

/** An abort: a lent lease goes back to its owner, a claim for the migration is deleted. */
export function undoMigration(leaseDir: string, root: string, migration: string): Promise<LeaseChange[]> {
  return rewrite(leaseDir, root, migration, (l, lent) => {
    if (lent) {
      const { lentTo: _t, ...owned } = l;
      return { record: owned, change: 'returned' };
    }
    return { record: undefined, change: 'released' };
  });
}
