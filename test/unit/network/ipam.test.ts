import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tryParseCidr } from '../../../src/network/cidr.js';
import {
  allocateLease,
  explicitIpProblem,
  leaseDirFor,
  listLeases,
  readLease,
  releaseLease,
  tryClaimLease,
  type LeaseOwner,
} from '../../../src/network/ipam.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { hostname } from 'node:os';

const SUBNET = tryParseCidr('10.213.0.0/24')!;
const A: LeaseOwner = { root: '/var/lib/tsm-a', container: 'web' };
const B: LeaseOwner = { root: '/var/lib/tsm-b', container: 'web' };
const C: LeaseOwner = { root: '/var/lib/tsm-a', container: 'db' };

async function withLeaseDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-ipam-'));
  try {
    await fn(leaseDirFor('10.213.0.0/24', base));
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

const alloc = (leaseDir: string, owner: LeaseOwner, requestedIp?: string) =>
  allocateLease({ leaseDir, subnet: SUBNET, owner, requestedIp });

test('leaseDirFor replaces / with _', () => {
  assert.equal(leaseDirFor('10.88.0.0/16'), '/run/tsmigrate/ipam/10.88.0.0_16');
  assert.equal(leaseDirFor('10.213.0.0/24', '/tmp/x'), '/tmp/x/10.213.0.0_24');
});

test('lowest free address; the lease file holds {root, host, container, claimedAt}', async () => {
  await withLeaseDir(async (dir) => {
    assert.equal(await alloc(dir, A), '10.213.0.2');
    assert.equal(await alloc(dir, B), '10.213.0.3');
    assert.equal(await alloc(dir, C), '10.213.0.4');
    const rec = JSON.parse(await readFile(path.join(dir, '10.213.0.2'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(rec).sort(), ['claimedAt', 'container', 'host', 'root']);
    assert.equal(rec['host'], hostname());
    assert.equal(rec['root'], A.root);
    assert.equal(rec['container'], A.container);
    assert.ok(!Number.isNaN(Date.parse(String(rec['claimedAt']))));
    // No temp or lock files left behind.
    assert.deepEqual((await readdir(dir)).sort(), ['10.213.0.2', '10.213.0.3', '10.213.0.4']);
    // A hole is filled first.
    assert.equal(await releaseLease(dir, '10.213.0.3', B), 'released');
    assert.equal(await alloc(dir, { root: '/r', container: 'x' }), '10.213.0.3');
    assert.equal(await alloc(dir, { root: '/r', container: 'y' }), '10.213.0.5');
    assert.deepEqual((await listLeases(dir)).map((l) => l.ip), ['10.213.0.2', '10.213.0.3', '10.213.0.4', '10.213.0.5']);
  });
});

test('an owner that already holds a lease gets it again', async () => {
  await withLeaseDir(async (dir) => {
    assert.equal(await alloc(dir, A), '10.213.0.2');
    assert.equal(await alloc(dir, { root: '/var/lib/tsm-a/', container: 'web' }), '10.213.0.2', 'root is normalised');
    assert.equal(await alloc(dir, A, '10.213.0.2'), '10.213.0.2');
    // An explicit different address moves the owner to it (one lease per container).
    assert.equal(await alloc(dir, A, '10.213.0.50'), '10.213.0.50');
    assert.deepEqual((await listLeases(dir)).map((l) => l.ip), ['10.213.0.50']);
  });
});

test('explicit --ip: validation (EINVAL_ARG) and collisions (ENETWORK)', async () => {
  await withLeaseDir(async (dir) => {
    const fix = 'choose a free address in 10.213.0.0/24 or omit --ip';
    const bad: Array<[string, RegExp]> = [
      ['10.213.0', /not an IPv4 address/],
      ['hello', /not an IPv4 address/],
      ['10.213.1.5', /outside the subnet 10\.213\.0\.0\/24/],
      ['192.0.2.2', /outside the subnet/],
      ['10.213.0.0', /network address/],
      ['10.213.0.255', /broadcast address/],
      ['10.213.0.1', /gateway/],
    ];
    for (const [requested, re] of bad) {
      await assert.rejects(alloc(dir, A, requested), (e: unknown) => {
        assert.ok(isTsmError(e, 'EINVAL_ARG'), String(e));
        assert.match(e.message, re);
        assert.ok(!e.message.includes('\n'));
        assert.equal(e.fix, fix);
        return true;
      }, requested);
      assert.equal(explicitIpProblem(SUBNET, requested) !== undefined, true);
    }
    assert.equal(explicitIpProblem(SUBNET, '10.213.0.254'), undefined);
    assert.equal(await alloc(dir, A, '10.213.0.9'), '10.213.0.9');
    await assert.rejects(alloc(dir, B, '10.213.0.9'), (e: unknown) => {
      assert.ok(isTsmError(e, 'ENETWORK'));
      assert.equal(e.message, "--ip 10.213.0.9 is already leased to container 'web' (state root /var/lib/tsm-a)");
      assert.equal(e.fix, fix);
      return true;
    });
    // Auto allocation skips the explicitly taken address only where it is.
    assert.equal(await alloc(dir, B), '10.213.0.2');
    assert.deepEqual(await readdir(dir).then((n) => n.sort()), ['10.213.0.2', '10.213.0.9']);
  });
});

test('an unreadable lease file still counts as taken', async () => {
  await withLeaseDir(async (dir) => {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, '10.213.0.2'), '');
    await writeFile(path.join(dir, 'README'), 'not a lease');
    assert.equal(await alloc(dir, A), '10.213.0.3');
    await assert.rejects(alloc(dir, B, '10.213.0.2'), (e: unknown) => isTsmError(e, 'ENETWORK') && /unknown owner/.test(e.message));
    assert.equal(await releaseLease(dir, '10.213.0.2', A), 'not-owner');
  });
});

test('release only by the owner, idempotent', async () => {
  await withLeaseDir(async (dir) => {
    assert.equal(await releaseLease(dir, '10.213.0.2', A), 'absent', 'missing dir is fine');
    const ip = await alloc(dir, A);
    assert.equal(await releaseLease(dir, ip, B), 'not-owner');
    assert.equal(await releaseLease(dir, ip, C), 'not-owner', 'same root, other container');
    assert.ok(await readLease(dir, ip));
    assert.equal(await releaseLease(dir, ip, A), 'released');
    assert.equal(await readLease(dir, ip), undefined);
    assert.equal(await releaseLease(dir, ip, A), 'absent');
    assert.deepEqual(await readdir(dir), []);
  });
});

test('exhausted subnet is ENETWORK', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-ipam-'));
  try {
    const small = tryParseCidr('10.213.0.0/30')!; // .1 gateway, .2 the only container address
    const leaseDir = leaseDirFor('10.213.0.0/30', base);
    assert.equal(await allocateLease({ leaseDir, subnet: small, owner: A }), '10.213.0.2');
    await assert.rejects(allocateLease({ leaseDir, subnet: small, owner: B }), (e: unknown) => isTsmError(e, 'ENETWORK') && /no free address left in 10\.213\.0\.0\/30/.test(e.message) && !!e.fix);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test('concurrent claims never share an address', async () => {
  await withLeaseDir(async (dir) => {
    const owners = Array.from({ length: 30 }, (_, i) => ({ root: '/r', container: `c${i}` }));
    const ips = await Promise.all(owners.map((o) => alloc(dir, o)));
    assert.equal(new Set(ips).size, ips.length);
    const wins = await Promise.all(owners.map((o) => tryClaimLease(dir, '10.213.0.200', o)));
    assert.equal(wins.filter(Boolean).length, 1);
    assert.equal((await readdir(dir)).filter((n) => n.startsWith('.')).length, 0, 'no temp files left');
  });
});
