/**
 * An address lease through a move, as the peer's restore, abort and commit
 * drive it (restore/tree.ts, agent/server.ts): the source keeps owning its
 * lease until the commit, whatever is rolled back and in which order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allocateLease, leaseDirFor, listLeases, readLease, releaseLease, type LeaseOwner } from '../../../src/network/ipam.js';
import { lendLease, settleMigration, undoMigration } from '../../../src/network/lease-handover.js';
import { makeNetworkSettings, planNetwork, releaseNetwork, type NetworkSettings } from '../../../src/network/setup.js';
import { tryParseCidr } from '../../../src/network/cidr.js';
import { UndoStack } from '../../../src/util/undo.js';
import { silentLogger } from '../../../src/util/logger.js';

const SUBNET = '10.214.0.0/24';
const SRC: LeaseOwner = { root: '/var/lib/tsm-src', container: 'web' };
const PEER: LeaseOwner = { root: '/var/lib/tsm-peer', container: 'web' };
const M = 'm-20260101-aaaa1111';

async function withNet(fn: (s: NetworkSettings) => Promise<void>): Promise<void> {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-handover-'));
  try {
    await fn(makeNetworkSettings({ subnet: SUBNET, leaseDir: leaseDirFor(SUBNET, base) }));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
const claim = (s: NetworkSettings, o: LeaseOwner) => allocateLease({ leaseDir: s.leaseDir, subnet: tryParseCidr(SUBNET)!, owner: o });
const owner = async (s: NetworkSettings, ip: string) => {
  const l = await readLease(s.leaseDir, ip);
  return l && { root: l.root, container: l.container, lent: l.lentTo?.root, migration: l.migration };
};

/** What the peer's restore does with the address, the undo steps pushed as tree.ts pushes them. */
async function peerRestore(s: NetworkSettings, ip: string, leaseOwner: LeaseOwner | null, undo: UndoStack, migration = M) {
  if (leaseOwner) await lendLease(s.leaseDir, ip, leaseOwner, PEER, migration);
  const net = await planNetwork('bridge', ip, PEER, s, migration);
  undo.push('release network', () => releaseNetwork(net, s));
  return net;
}

test("the peer's rollback leaves the source's lease owned by the source (it was deleted before)", async () => {
  await withNet(async (s) => {
    const ip = await claim(s, SRC);
    const undo = new UndoStack(silentLogger);
    await peerRestore(s, ip, SRC, undo);
    assert.deepEqual(await owner(s, ip), { root: SRC.root, container: 'web', lent: PEER.root, migration: undefined }, 'lent, still owned by the source');
    await undo.unwind();
    assert.deepEqual(await owner(s, ip), { root: SRC.root, container: 'web', lent: undefined, migration: undefined });
    assert.equal((await listLeases(s.leaseDir)).length, 1);
  });
});

test("an abort whose tree is gone (agent killed in the restore): the peer's releases and the migration's undo give the lease back", async () => {
  await withNet(async (s) => {
    const ip = await claim(s, SRC);
    const net = await peerRestore(s, ip, SRC, new UndoStack(silentLogger));
    // releaseResources of the peer's record (container/stop.ts), then the abort's sweep
    assert.equal(await releaseLease(s.leaseDir, ip, PEER), 'returned');
    assert.equal(await releaseLease(s.leaseDir, ip, PEER), 'not-owner');
    await peerRestore(s, ip, SRC, new UndoStack(silentLogger));
    assert.deepEqual(await undoMigration(s.leaseDir, PEER.root, M), [{ ip, change: 'returned' }]);
    assert.deepEqual(await undoMigration(s.leaseDir, PEER.root, M), [], 'idempotent');
    assert.deepEqual(await owner(s, ip), { root: SRC.root, container: 'web', lent: undefined, migration: undefined });
    void net;
  });
});

test('a retry after a crash lends again: the stale lend is replaced; the commit passes ownership', async () => {
  await withNet(async (s) => {
    const ip = await claim(s, SRC);
    await peerRestore(s, ip, SRC, new UndoStack(silentLogger), 'm-stale-0000');
    const undo = new UndoStack(silentLogger);
    await peerRestore(s, ip, SRC, undo, M);
    assert.equal((await readLease(s.leaseDir, ip))?.lentTo?.migration, M);
    assert.deepEqual(await settleMigration(s.leaseDir, PEER.root, M), [{ ip, change: 'passed' }]);
    assert.deepEqual(await owner(s, ip), { root: PEER.root, container: 'web', lent: undefined, migration: undefined });
    // the source removes its copy: the address is not its own any more
    assert.equal(await releaseLease(s.leaseDir, ip, SRC), 'not-owner');
    undo.commit();
    assert.deepEqual(await owner(s, ip), { root: PEER.root, container: 'web', lent: undefined, migration: undefined });
  });
});

test('the source letting go of a lent lease hands it to the copy that may be using it', async () => {
  await withNet(async (s) => {
    const ip = await claim(s, SRC);
    await peerRestore(s, ip, SRC, new UndoStack(silentLogger));
    assert.equal(await releaseLease(s.leaseDir, ip, SRC), 'handed-over');
    assert.deepEqual(await owner(s, ip), { root: PEER.root, container: 'web', lent: undefined, migration: M });
    assert.deepEqual(await settleMigration(s.leaseDir, PEER.root, M), [{ ip, change: 'settled' }]);
    assert.deepEqual(await owner(s, ip), { root: PEER.root, container: 'web', lent: undefined, migration: undefined });
  });
});

test('separate hosts (the peer has its own lease directory): claimed for the migration, settled at the commit, deleted at an abort', async () => {
  await withNet(async (peerNet) => {
    const ip = '10.214.0.7';
    const undo = new UndoStack(silentLogger);
    // the source's owner names a lease this directory does not hold: the peer claims the address itself
    await peerRestore(peerNet, ip, SRC, undo);
    assert.deepEqual(await owner(peerNet, ip), { root: PEER.root, container: 'web', lent: undefined, migration: M });
    await undo.unwind();
    assert.equal(await readLease(peerNet.leaseDir, ip), undefined, 'the rollback deletes its own claim');
    await peerRestore(peerNet, ip, null, new UndoStack(silentLogger));
    assert.deepEqual(await undoMigration(peerNet.leaseDir, PEER.root, M), [{ ip, change: 'released' }]);
    await peerRestore(peerNet, ip, null, new UndoStack(silentLogger));
    assert.deepEqual(await settleMigration(peerNet.leaseDir, PEER.root, M), [{ ip, change: 'settled' }]);
    assert.deepEqual(await owner(peerNet, ip), { root: PEER.root, container: 'web', lent: undefined, migration: undefined });
    assert.deepEqual(await undoMigration(peerNet.leaseDir, PEER.root, M), [], 'a settled lease is not the migration\'s any more');
  });
});

test("another container's lease is never lent, nor taken by the peer", async () => {
  await withNet(async (s) => {
    const ip = await claim(s, { root: '/var/lib/tsm-other', container: 'db' });
    assert.equal(await lendLease(s.leaseDir, ip, SRC, PEER, M), false);
    await assert.rejects(planNetwork('bridge', ip, PEER, s, M), /already leased to container 'db'/);
    assert.equal((await readLease(s.leaseDir, ip))?.container, 'db');
  });
});
