import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseCompression, chooseImagePath, migrationId } from '../../../src/move/plan.js';
import { heapLike } from '../../../src/transfer/send.js';
import { compress } from 'zstd-napi';

test('chooseCompression: forced either way; auto only when zstd measured at least 10% faster end to end', () => {
  const rows: Array<[Parameters<typeof chooseCompression>, boolean]> = [
    [['on', 0, 0], true],
    [['off', 1e9, 5e9], false],
    [['auto', 100e6, 200e6], true], // a slow link: zstd doubles the rate
    [['auto', 100e6, 105e6], false], // not worth it
    [['auto', 900e6, 400e6], false], // a fast link: zstd slows it down
    [['auto', 0, 200e6], false], // nothing measured: send plain
    [['auto', 100e6, Number.NaN], false],
  ];
  for (const [args, want] of rows) assert.equal(chooseCompression(...args), want, JSON.stringify(args));
});

test('heap-like probe data compresses like a heap: about half, never to nothing', () => {
  const d = heapLike(4 << 20);
  const r = compress(d, { compressionLevel: 1 }).length / d.length;
  assert.ok(r > 0.5 && r < 0.8, `ratio ${r}`);
  assert.notDeepEqual(d.subarray(0, 65536), d.subarray(131072, 131072 + 65536), 'no two text blocks alike');
});

test('migration ids are sortable by time and carry the random part', () => {
  assert.equal(migrationId('abcd1234', new Date('2026-11-29T05:06:07.890Z')), 'm-20261129050607-abcd1234');
});

test('chooseImagePath: files in tmpfs where they fit, the streamer where not, or as forced', () => {
  const MiB = 2 ** 20;
  const shm = (free: number) => ({ tmpfs: true, freeBytes: free * MiB });
  const table: Array<[boolean | undefined, number, { tmpfs: boolean; freeBytes: number }, boolean, RegExp]> = [
    [undefined, 256 * MiB, shm(12000), false, /^auto: 256 MiB of memory; files in tmpfs, so that the peer restores as they arrive/],
    [undefined, 8192 * MiB, shm(12288), false, /files in tmpfs/],
    [undefined, 8192 * MiB, shm(12287), true, /^auto: 12287 MiB free in tmpfs for 8192 MiB of memory/],
    [undefined, 64 * MiB, { tmpfs: false, freeBytes: 1e12 }, true, /not in tmpfs; 64 MiB of memory streamed/],
    [undefined, 0, shm(0), false, /^auto: 0 MiB/],
    [true, 4096 * MiB, shm(1e6), true, /on/],
    [false, 1 * MiB, { tmpfs: false, freeBytes: 0 }, false, /off/],
  ];
  for (const [force, bytes, staging, stream, why] of table) {
    const r = chooseImagePath(force, bytes, staging);
    assert.equal(r.stream, stream, `${force} ${bytes} ${JSON.stringify(staging)}`);
    assert.match(r.why, why);
  }
});
