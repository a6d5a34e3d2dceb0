/** The pure limit checks (src/archive/limits.ts), table-driven. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { declaredOf, GiB, inflateProblem, limitError, limitsFor, MiB, PRESETS, streamBound, tarEntryProblem, type TarLimits } from '../../../src/archive/limits.js';

const L: TarLimits = { maxBytes: 1000, maxEntries: 3, maxDepth: 2, maxEntryBytes: 600 };

test('tarEntryProblem: entries, depth, one entry, total bytes; null when within', () => {
  const rows: Array<[{ entries: number; bytes: number }, { depth: number; size: number }, RegExp | null]> = [
    [{ entries: 0, bytes: 0 }, { depth: 1, size: 0 }, null],
    [{ entries: 2, bytes: 400 }, { depth: 2, size: 600 }, null], // exactly at every limit
    [{ entries: 3, bytes: 0 }, { depth: 1, size: 0 }, /more than 3 entries/],
    [{ entries: 0, bytes: 0 }, { depth: 3, size: 0 }, /3 directories deep \(at most 2\)/],
    [{ entries: 0, bytes: 0 }, { depth: 1, size: 601 }, /entry of 601 bytes \(at most 600\)/],
    [{ entries: 1, bytes: 401 }, { depth: 1, size: 600 }, /more than 1000 bytes/],
  ];
  for (const [seen, e, want] of rows) {
    const got = tarEntryProblem(L, seen, e);
    if (want === null) assert.equal(got, null, JSON.stringify([seen, e]));
    else assert.match(got ?? '', want, JSON.stringify([seen, e]));
  }
});

test('inflateProblem: the cap always, the ratio only past the slack', () => {
  const l = { maxBytes: 10 * MiB, maxRatio: 100, ratioSlack: 1 * MiB };
  const rows: Array<[number, number, RegExp | null]> = [
    [1, 1 * MiB, null], // a million to one, but within the slack
    [1, 1 * MiB + 1, /more than 100 times \(1 compressed bytes gave 1048577\)/],
    [64 * 1024, 6 * MiB, null], // 96:1
    [64 * 1024, 7 * MiB, /more than 100 times/], // 112:1
    [10 * MiB, 10 * MiB, null],
    [10 * MiB, 10 * MiB + 1, /more than 10485760 bytes/],
  ];
  for (const [inB, outB, want] of rows) {
    const got = inflateProblem(l, inB, outB);
    if (want === null) assert.equal(got, null, `${inB} -> ${outB}`);
    else assert.match(got ?? '', want, `${inB} -> ${outB}`);
  }
});

test('limitsFor: a declared size bounds bytes and lifts the ratio up to it; declared entries bound entries; never above the preset', () => {
  const none = limitsFor('upper');
  assert.deepEqual(none, { tar: PRESETS.upper.tar, inflate: PRESETS.upper.inflate });
  const d = limitsFor('criu-images', { tarBytes: 3 * GiB, entries: 12 });
  assert.equal(d.tar.maxBytes, 3 * GiB);
  assert.equal(d.tar.maxEntries, 12);
  assert.equal(d.inflate.maxBytes, 3 * GiB);
  assert.equal(d.inflate.ratioSlack, 3 * GiB);
  const huge = limitsFor('upper', { tarBytes: 1e15, entries: 1e9 });
  assert.equal(huge.tar.maxBytes, PRESETS.upper.tar.maxBytes);
  assert.equal(huge.tar.maxEntries, PRESETS.upper.tar.maxEntries);
  assert.equal(huge.inflate.maxBytes, PRESETS.upper.inflate.maxBytes);
  // the presets are not changed by a call
  assert.equal(PRESETS['criu-images'].tar.maxEntries, 100_000);
});

test('presets: an exported checkpoint is six flat entries (the root, manifest, signature, two blobs, log); streams have entry, depth and ratio bounds', () => {
  assert.deepEqual(PRESETS['checkpoint-archive'].tar.maxEntries, 6);
  assert.deepEqual(PRESETS['checkpoint-archive'].tar.maxDepth, 1);
  assert.equal(PRESETS['checkpoint-archive'].inflate.maxRatio, 64);
  for (const k of ['criu-images', 'upper', 'rootfs'] as const) {
    assert.ok(PRESETS[k].tar.maxEntries <= 500_000, k);
    assert.ok(PRESETS[k].tar.maxDepth <= 256, k);
    assert.ok(PRESETS[k].inflate.maxRatio <= 1024, k);
    assert.ok(PRESETS[k].inflate.maxBytes <= 64 * GiB, k);
  }
});

test('streamBound and declaredOf', () => {
  assert.equal(streamBound(undefined), 64 * MiB);
  assert.equal(streamBound(0), 64 * MiB);
  assert.equal(streamBound(GiB), 2 * GiB + 64 * MiB);
  assert.deepEqual(declaredOf({ entries: 7, tarBytes: 1024 }), { entries: 7, tarBytes: 1024 });
  assert.deepEqual(declaredOf({}), {});
  assert.deepEqual(declaredOf({ entries: -1, tarBytes: 1.5 }), {});
});

test('limitError: one line with a fix', () => {
  const e = limitError('the archive /x', 'has more than 5 entries');
  assert.equal(e.code, 'EINVAL_ARG');
  assert.equal(e.message, 'refused the archive /x: it has more than 5 entries');
  assert.ok(e.fix && !e.oneLine().includes('\n'));
});
