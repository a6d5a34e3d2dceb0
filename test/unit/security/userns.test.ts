import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { allocateRange, DEFAULT_POOL, pickRange, poolFromSubuid, releaseRange, reserveRange } from '../../../src/userns/ranges.js';
import { deviceDumpExternals, deviceRestoreExternals } from '../../../src/security/criu-externals.js';
import { macForIp } from '../../../src/network/veth.js';

test('pickRange: the lowest free aligned range, skipping any overlap, undefined when full', () => {
  const pool = { start: 100000, size: 65536 * 4 };
  const r = (i: number) => ({ start: 100000 + i * 65536, size: 65536 });
  const cases: Array<[Array<{ start: number; size: number }>, { start: number; size: number } | undefined]> = [
    [[], r(0)],
    [[r(0)], r(1)],
    [[r(1)], r(0)],
    [[r(0), r(1), r(3)], r(2)],
    [[{ start: 100000 + 10, size: 5 }], r(1)], // a foreign range inside the first block
    [[{ start: 100000 + 65000, size: 70000 }], r(3)], // one straddling three blocks
    [[r(0), r(1), r(2), r(3)], undefined],
  ];
  for (const [taken, want] of cases) assert.deepEqual(pickRange(pool, taken), want, JSON.stringify(taken));
});

test('the pool: a tsmigrate line in /etc/subuid, else the upper half of the id space', () => {
  assert.deepEqual(poolFromSubuid('alice:100000:65536\ntsmigrate:300000:655360\n'), { start: 300000, size: 655360 });
  assert.deepEqual(poolFromSubuid('tsmigrate:0:65536'), DEFAULT_POOL);
  assert.deepEqual(poolFromSubuid('tsmigrate:1:100'), DEFAULT_POOL, 'smaller than one range');
  assert.deepEqual(poolFromSubuid(undefined), DEFAULT_POOL);
});

test('allocate, reserve and release ranges under a state root', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-userns-'));
  const pool = { start: 1000000, size: 65536 * 2 };
  const a = await allocateRange(root, 'a', pool);
  const b = await allocateRange(root, 'b', pool);
  assert.notDeepEqual(a, b);
  await assert.rejects(allocateRange(root, 'c', pool), /no free user namespace range/);
  await reserveRange(root, 'a', a); // its own: fine, idempotent
  await assert.rejects(reserveRange(root, 'x', a), /held by container a/);
  await releaseRange(root, 'a');
  await reserveRange(root, 'x', a); // a move bringing in a container with that range
  await assert.rejects(allocateRange(root, 'c', pool), /no free/);
  await releaseRange(root, 'x');
  assert.deepEqual(await allocateRange(root, 'c', pool), a);
  assert.equal(path.basename(root).startsWith('tsm-userns-'), true);
});

test('CRIU externals for a user namespace\'s bound device nodes; none without one', () => {
  const security = { devices: { rules: [], nodes: [{ path: '/dev/fuse', hostPath: '/dev/fuse', type: 'c' as const, major: 10, minor: 229, mode: 0o666 }] } };
  assert.deepEqual(deviceDumpExternals({ security: security as never }), []);
  const c = { userns: { start: 1 << 31, size: 65536 }, security: security as never };
  assert.ok(deviceDumpExternals(c).includes('mnt[/dev/null]:tsm-dev_null'));
  assert.ok(deviceDumpExternals(c).includes('mnt[/dev/fuse]:tsm-dev_fuse'));
  assert.ok(deviceRestoreExternals(c).includes('mnt[tsm-dev_fuse]:/dev/fuse'));
  assert.equal(deviceDumpExternals(c).length, 7);
});

test('a container\'s MAC derives from its address', () => {
  assert.equal(macForIp('10.88.0.10'), '02:88:0a:58:00:0a');
  assert.equal(macForIp('192.168.255.1'), '02:88:c0:a8:ff:01');
});
