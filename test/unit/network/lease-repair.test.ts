/**
 * Leases a crash left behind: the planner as a table, then the repair on a
 * real lease directory with the facts given in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir, hostname } from 'node:os';
import path from 'node:path';
import { leaseDirFor, readLease, type Lease } from '../../../src/network/ipam.js';
import { planLeaseRepair, repairLeases, type LeaseCase, type LeaseFacts, type MigrationPhase } from '../../../src/network/lease-repair.js';

const H = hostname();
const SRC = '/var/lib/tsm-src';
const PEER = '/var/lib/tsm-peer';
const M = 'm-20260101-aaaa1111';
const at = '2026-01-01T00:00:00.000Z';

const lent = (phase: MigrationPhase | undefined, ownerExists = true): LeaseCase => ({
  lease: { ip: '10.1.0.2', root: SRC, host: H, container: 'web', claimedAt: at, lentTo: { root: PEER, host: H, container: 'web', migration: M } },
  ownerExists,
  ...(phase ? { phase } : {}),
});
const claimed = (phase: MigrationPhase, ownerExists: boolean): LeaseCase => ({
  lease: { ip: '10.1.0.3', root: PEER, host: H, container: 'web', claimedAt: at, migration: M },
  ownerExists,
  phase,
});
const plain = (root: string, ownerExists: boolean, host = H): LeaseCase => ({ lease: { ip: '10.1.0.4', root, host, container: 'db', claimedAt: at }, ownerExists });

const plan = (root: string, cases: LeaseCase[], inUse: Array<{ container: string; ip: string }> = [], unleased: string[] = []) =>
  planLeaseRepair({ host: H, root, cases, inUse, unleased }).map((r) => `${r.ip} ${r.action} ${r.side}`);

test('the planner: what each side repairs, and what it leaves alone', () => {
  const rows: Array<[string, string, LeaseCase[], string[]]> = [
    ['lent, migration committed: passes (either side)', PEER, [lent('committed')], ['10.1.0.2 pass peer']],
    ['lent, migration committed, from the source', SRC, [lent('committed')], ['10.1.0.2 pass source']],
    ['lent, migration aborted: back to the owner', SRC, [lent('aborted')], ['10.1.0.2 return source']],
    ['lent, migration unknown on the peer: back', PEER, [lent('unknown')], ['10.1.0.2 return peer']],
    ['lent, aborted, the owner gone too: freed', SRC, [lent('aborted', false)], ['10.1.0.2 free source']],
    ['lent to a migration under way: left', SRC, [lent('receiving'), lent('prepared'), lent('begun')], []],
    ['claimed for a committed migration: settled', PEER, [claimed('committed', true)], ['10.1.0.3 settle peer']],
    ['claimed for an aborted migration, its container gone: freed', PEER, [claimed('aborted', false)], ['10.1.0.3 free peer']],
    ['claimed for an aborted migration, its container still there: left (the abort removes it)', PEER, [claimed('aborted', true)], []],
    ["claimed for a migration of another root: not this root's business", SRC, [claimed('aborted', false)], []],
    ['owned by a container of this root that is gone: freed', SRC, [plain(SRC, false)], ['10.1.0.4 free source']],
    ['owned by a live container: left', SRC, [plain(SRC, true)], []],
    ["owned by another root's container that is gone: left to that root", PEER, [plain(SRC, false)], []],
    ["another host's lease: left", SRC, [plain(SRC, false, 'elsewhere')], []],
    ['a lease written before hosts were recorded counts as this host', SRC, [plain(SRC, false, '')], ['10.1.0.4 free source']],
  ];
  for (const [what, root, cases, want] of rows) assert.deepEqual(plan(root, cases), want, what);
  assert.deepEqual(plan(SRC, [], [{ container: 'web', ip: '10.1.0.9' }, { container: 'db', ip: '10.1.0.4' }], ['10.1.0.9']), ['10.1.0.9 reclaim source'], 'a live container without a lease gets it back');
  const why = planLeaseRepair({ host: H, root: SRC, cases: [lent('aborted')], inUse: [], unleased: [] })[0]!.why;
  assert.match(why, /migration m-20260101-aaaa1111 was aborted: the address goes back to container 'web' \(state root \/var\/lib\/tsm-src\)/);
});

/** Facts in memory: which containers exist, which migrations are in which phase. */
function facts(containers: string[], phases: Record<string, MigrationPhase>, inUse: Array<{ container: string; ip: string }> = []): LeaseFacts {
  return {
    containerExists: async (root, name) => containers.includes(`${root}/${name}`),
    migrationPhase: async (root, id) => phases[`${root}/${id}`] ?? 'unknown',
    addressesInUse: async (root) => (root === SRC ? inUse : []),
  };
}

test('the repair on a lease directory: each case ends with one owner, and a second run finds nothing', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-repair-'));
  const dir = leaseDirFor('10.1.0.0/24', base);
  try {
    await mkdir(dir, { recursive: true });
    const put = (l: Lease) => {
      const { ip, ...rec } = l;
      return writeFile(path.join(dir, ip), JSON.stringify(rec));
    };
    // the shape the killed agent left: lent for a migration the peer aborted without giving it back
    await put({ ip: '10.1.0.2', root: SRC, host: H, container: 'web', claimedAt: at, lentTo: { root: PEER, host: H, container: 'web', migration: M } });
    // the shape main's rollback left: the source's address owned by the peer's copy, which is gone
    await put({ ip: '10.1.0.3', root: PEER, host: H, container: 'api', claimedAt: at });
    // someone else's, alive
    await put({ ip: '10.1.0.4', root: '/var/lib/other', host: H, container: 'x', claimedAt: at });
    const f = facts([`${SRC}/web`, `${SRC}/api`], { [`${PEER}/${M}`]: 'aborted' }, [{ container: 'api', ip: '10.1.0.3' }]);

    const onPeer = await repairLeases(dir, H, PEER, f);
    assert.deepEqual(onPeer.map((r) => `${r.ip} ${r.action}`), ['10.1.0.2 return', '10.1.0.3 free']);
    const onSource = await repairLeases(dir, H, SRC, f);
    assert.deepEqual(onSource.map((r) => `${r.ip} ${r.action}`), ['10.1.0.3 reclaim'], 'the source claims its running container\'s address again');
    for (const [ip, root, container] of [['10.1.0.2', SRC, 'web'], ['10.1.0.3', SRC, 'api'], ['10.1.0.4', '/var/lib/other', 'x']] as const) {
      const l = await readLease(dir, ip);
      assert.deepEqual([l?.root, l?.container, l?.lentTo, l?.migration], [root, container, undefined, undefined], ip);
    }
    assert.deepEqual(await repairLeases(dir, H, PEER, f), []);
    assert.deepEqual(await repairLeases(dir, H, SRC, f), []);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test('a lease that changed after the plan is left as it is now', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-repair-'));
  const dir = leaseDirFor('10.1.0.0/24', base);
  try {
    await mkdir(dir, { recursive: true });
    const rec = { root: SRC, host: H, container: 'web', claimedAt: at, lentTo: { root: PEER, host: H, container: 'web', migration: M } };
    await writeFile(path.join(dir, '10.1.0.2'), JSON.stringify(rec));
    const f = facts([`${SRC}/web`], { [`${PEER}/${M}`]: 'aborted' });
    // a new move lends it again between the facts and the change
    const slow: LeaseFacts = {
      ...f,
      migrationPhase: async (root, id) => {
        await writeFile(path.join(dir, '10.1.0.2'), JSON.stringify({ ...rec, lentTo: { ...rec.lentTo, migration: 'm-new' } }));
        return f.migrationPhase(root, id);
      },
    };
    assert.deepEqual(await repairLeases(dir, H, SRC, slow), []);
    assert.equal((await readLease(dir, '10.1.0.2'))?.lentTo?.migration, 'm-new');
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
