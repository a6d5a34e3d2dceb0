/**
 * The authenticated store with crafted stores, in milliseconds: an object
 * altered with its checksum recomputed fails the keyed verify; a lost snapshot
 * and a replayed index are errors naming them; encrypted stores' file names
 * and chunk boundaries come from the key; old stores are refused; and a
 * property test over object decoding (only typed errors, nothing tampered
 * accepted).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { ChunkStore, type WriteCounters } from '../../../src/store/chunk-store.js';
import { chunkStream, gearTable } from '../../../src/store/chunker.js';
import { chunkId, deriveKey, type StoreKey } from '../../../src/store/keys.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { decodeChunk, decodeObject, encodeObject, padme } from '../../../src/store/object.js';
import { indexSeenIn, indexSeenInMemory } from '../../../src/store/index-seen.js';
import { craftMeta } from '../../helpers/store-craft.js';
import { verifyStore } from '../../../src/store/verify-store.js';
import { pruneStore } from '../../../src/store/prune.js';
import { auditListing, checkNotRolledBack, parseIndex } from '../../../src/store/snapshot-index.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { isValidName } from '../../../src/util/name.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const counters = (): WriteCounters => ({ logical: 0, chunks: 0, newChunks: 0, newBytes: 0 });
async function* once(b: Buffer) {
  yield b;
}
const integrity = (re: RegExp) => (e: unknown) => isTsmError(e) && e.code === 'EINTEGRITY' && re.test(e.message);

/** A store with checkpoints web-1..web-n of `web`, each a few chunks of its own. */
async function crafted(dir: string, key: StoreKey | null, n: number, seen = indexSeenInMemory()) {
  const backend = new LocalBackend(dir);
  const store = await ChunkStore.open(backend, { create: true, key, seen });
  for (let i = 1; i <= n; i++) {
    const c = counters();
    const criu = await store.writeStream(once(randomBytes(300_000)), c);
    const upper = await store.writeStream(once(Buffer.from(`upper ${i}`)), c);
    const meta = craftMeta(`web-2026120${i}t100000z-abcdef`, 'web', `2026-12-0${i}T10:00:00.000Z`, criu.ref, upper.ref);
    await store.commit({ meta, ids: { criu: criu.ids, upper: upper.ids } });
  }
  return { store, backend, seen };
}

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tsm-auth-'));
}

/** Flip a byte inside an object and recompute its trailing sha256, as a store host would. */
function tamper(obj: Buffer, at: number): Buffer {
  const b = Buffer.from(obj);
  b[at]! ^= 0x01;
  createHash('sha256').update(b.subarray(0, b.length - 32)).digest().copy(b, b.length - 32);
  return b;
}

test('a chunk altered with its checksum recomputed passes the store host\'s check but fails the keyed verify, naming it', async () => {
  for (const key of [deriveKey(randomBytes(32)), null]) {
    const dir = await tmp();
    try {
      const { store, backend } = await crafted(dir, key, 2);
      assert.deepEqual((await verifyStore(store, null)).problems, []);
      const snap = await store.load('web-20261202t100000z-abcdef');
      const victim = snap.ids.criu.subarray(0, 32).toString('hex');
      const file = backend.chunkFile(victim);
      await fs.writeFile(file, tamper(await fs.readFile(file), 60));
      // the store host's own check (all the old verify did) finds nothing
      assert.deepEqual((await backend.verify(null)).bad, []);
      const r = await verifyStore(store, null);
      assert.equal(r.problems.length, 1, r.problems.join('\n'));
      assert.match(r.problems[0]!, new RegExp(`^chunk ${victim.slice(0, 12)}… of checkpoint web-20261202t100000z-abcdef ${key ? 'is corrupted: authentication failed' : 'does not match its id'}`));
      assert.equal((await verifyStore(store, 'web-20261201t100000z-abcdef')).problems.length, 0);
      assert.equal((await verifyStore(store, 'web-20261202t100000z-abcdef')).problems.length, 1);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
});

test('the newest snapshot\'s metadata deleted: listed as missing, and prune refuses', async () => {
  const dir = await tmp();
  try {
    const { store } = await crafted(dir, deriveKey(randomBytes(32)), 3);
    const newest = 'web-20261203t100000z-abcdef';
    await fs.rm(path.join(dir, 'snapshots', `${store.nameOf(newest)}.meta`));
    const l = await store.list('web');
    assert.deepEqual(l.snapshots.map((s) => s.id), ['web-20261201t100000z-abcdef', 'web-20261202t100000z-abcdef']);
    assert.deepEqual(l.missing.map((m) => m.id), [newest]);
    assert.match((await verifyStore(store, null)).problems.join('\n'), new RegExp(`checkpoint ${newest} \\(web, taken 2026-12-03T10:00:00.000Z\\) is in the store's index, but its metadata is gone`));
    await assert.rejects(pruneStore(store, { container: 'web', schedule: null, policy: { keepLast: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0 } }), integrity(new RegExp(`lost checkpoints its index lists: ${newest}`)));
    assert.equal((await store.list('web')).snapshots.length, 2, 'nothing pruned');
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('an older index replayed is a rollback; a lost index, a forged one and one from another store are refused', async () => {
  const dir = await tmp();
  try {
    const key = deriveKey(randomBytes(32));
    const { store, seen } = await crafted(dir, key, 1);
    const old = await fs.readFile(path.join(dir, 'index'));
    const c = counters();
    const s = await store.writeStream(once(randomBytes(1000)), c);
    const meta = craftMeta('web-20261209t100000z-abcdef', 'web', '2026-12-09T10:00:00.000Z', s.ref, s.ref);
    await store.commit({ meta, ids: { criu: s.ids, upper: s.ids } });
    assert.equal([...seen.map.values()][0], 2);
    // the store host puts back the index of before the second checkpoint (and hides its metadata)
    await fs.writeFile(path.join(dir, 'index'), old);
    await fs.rm(path.join(dir, 'snapshots', `${store.nameOf(meta.id)}.meta`));
    await assert.rejects(store.list('web'), integrity(/index of store .* is #1, but this host has seen #2: the store was rolled back/));
    // a host that never saw #2 cannot tell a rollback from an old store: it sees #1, consistent
    const fresh = await ChunkStore.open(new LocalBackend(dir), { create: false, key, seen: indexSeenInMemory() });
    assert.equal((await fresh.list('web')).snapshots.length, 1);
    // no index at all
    await fs.rm(path.join(dir, 'index'));
    await assert.rejects(store.list(), integrity(/has lost its index \(this host has seen #2\)/));
    await assert.rejects(fresh.list(), integrity(/has lost its index \(this host has seen #1\)/));
    const stranger = await ChunkStore.open(new LocalBackend(dir), { create: false, key, seen: indexSeenInMemory() });
    await assert.rejects(stranger.list(), integrity(/holds 1 checkpoints but no index/));
    // an index sealed with another key, or one from another store with this key
    const other = await crafted(await tmp(), deriveKey(randomBytes(32)), 1);
    await fs.copyFile(path.join(other.backend.dir, 'index'), path.join(dir, 'index'));
    await assert.rejects(stranger.list(), integrity(/index of store .* is corrupted: authentication failed/));
    const sibling = await crafted(await tmp(), key, 1);
    await fs.copyFile(path.join(sibling.backend.dir, 'index'), path.join(dir, 'index'));
    await assert.rejects(stranger.list(), integrity(/authentication failed/));
    await fs.rm(other.backend.dir, { recursive: true, force: true });
    await fs.rm(sibling.backend.dir, { recursive: true, force: true });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('an encrypted store\'s file names carry no container name or time; unindexed metadata is named as such', async () => {
  const dir = await tmp();
  try {
    const { store } = await crafted(dir, deriveKey(randomBytes(32)), 2);
    const names = (await fs.readdir(dir, { recursive: true })).map(String);
    for (const n of names) assert.doesNotMatch(n, /web|2026|t100000z/, n);
    assert.ok(names.some((n) => n.startsWith('snapshots/') && n.endsWith('.meta')));
    // metadata put back after its removal is not in the index: reported, never listed
    const id = 'web-20261201t100000z-abcdef';
    const keep = await fs.readFile(path.join(dir, 'snapshots', `${store.nameOf(id)}.meta`));
    await store.removeSnapshots([id]);
    await fs.writeFile(path.join(dir, 'snapshots', `${store.nameOf(id)}.meta`), keep);
    const l = await store.list();
    assert.deepEqual(l.snapshots.map((s) => s.id), ['web-20261202t100000z-abcdef']);
    assert.match(l.bad.map((b) => b.problem).join('\n'), new RegExp(`checkpoint ${id} is not in the store's index`));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('two stores with different keys cut the same data at different boundaries; one key always the same', async () => {
  const data = randomBytes(2 << 20);
  const cuts = async (gearKey: Buffer | null) => {
    const out: number[] = [];
    let at = 0;
    for await (const c of chunkStream(once(data), gearTable(gearKey))) out.push((at += c.length));
    return out;
  };
  const [k1, k2] = [deriveKey(randomBytes(32)), deriveKey(randomBytes(32))];
  const a = await cuts(k1.gearKey);
  const b = await cuts(k2.gearKey);
  const plain = await cuts(null);
  assert.deepEqual(await cuts(k1.gearKey), a);
  const shared = (x: number[], y: number[]) => x.filter((v) => y.includes(v) && v !== data.length).length;
  assert.ok(shared(a, b) <= 2, `${shared(a, b)} of ${a.length} boundaries shared`);
  assert.ok(shared(a, plain) <= 2);
  assert.ok(a.length > 20 && b.length > 20);
});

test('encrypted objects hide their length (Padmé) and whether they compressed', () => {
  const key = deriveKey(randomBytes(32));
  const sizes = new Set<number>();
  for (let n = 40_000; n < 41_000; n += 10) sizes.add(encodeObject(randomBytes(n), randomBytes(32), key).length);
  assert.ok(sizes.size <= 2, `${sizes.size} distinct sizes for 100 lengths`);
  assert.equal(padme(40_000), 40_960);
  assert.ok(padme(100_000) >= 100_000 && padme(100_000) < 112_000);
  const zero = encodeObject(Buffer.alloc(40_000), randomBytes(32), key);
  assert.equal(zero.readUInt32BE(6) === 40_000, false, 'no plain length in the header');
  assert.equal(zero.subarray(0, 6).toString('latin1'), 'TSMO\x02\x02');
});

test('a store of format 1 is refused with a fix', async () => {
  const dir = await tmp();
  try {
    await fs.writeFile(path.join(dir, 'store.json'), JSON.stringify({ format: 'tsmigrate-store/1', createdAt: 'x', chunking: {}, encryption: null }));
    await assert.rejects(ChunkStore.open(new LocalBackend(dir), { create: false, key: null, seen: null }), (e) =>
      isTsmError(e) && e.code === 'ECONFIG' && /is a tsmigrate-store\/1 store: its objects and index are not authenticated/.test(e.message) && /new store/.test(e.fix ?? ''));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('property: decoding random or mutated objects throws only typed errors and never accepts a tampered one', () => {
  const key = deriveKey(randomBytes(32));
  const aad = randomBytes(32);
  const typed = (e: unknown) => isTsmError(e) && (e.code === 'EINTEGRITY' || e.code === 'EINVAL_ARG');
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 3000 }),
      fc.boolean(),
      fc.boolean(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      fc.uint8Array({ maxLength: 64 }),
      (data, encrypted, compressible, flips, fixSum, junk) => {
        const plain = compressible ? Buffer.from(Buffer.from(data).toString('hex').repeat(3)) : Buffer.from(data);
        const k = encrypted ? key : null;
        const id = chunkId(plain, k);
        const obj = encodeObject(plain, id, k);
        assert.deepEqual(decodeObject(obj, id, k, 'chunk'), plain);
        // mutate: flip bytes (a store host recomputing the checksum or not), or truncate, or append
        let bad = Buffer.from(obj);
        for (const [at, x] of flips) bad[at % bad.length]! ^= x;
        if (fixSum && bad.length > 32) createHash('sha256').update(bad.subarray(0, bad.length - 32)).digest().copy(bad, bad.length - 32);
        if (junk.length) bad = Buffer.concat([bad.subarray(0, Math.max(0, bad.length - junk.length)), Buffer.from(junk)]);
        if (bad.equals(obj)) return;
        try {
          // what a reader takes: an encrypted one never once altered; an unencrypted one only with its content intact
          const got = decodeChunk(bad, id, k, 'chunk');
          assert.ok(!encrypted, 'a tampered encrypted object was accepted');
          assert.deepEqual(got, plain);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.ok(typed(e), `untyped error ${String(e)}`);
        }
        // and pure junk
        try {
          decodeChunk(Buffer.from(junk), id, k, 'chunk');
        } catch (e) {
          assert.ok(typed(e), `untyped error ${String(e)}`);
        }
      },
    ),
    { numRuns: fuzzRuns() },
  );
});

test('checkNotRolledBack and auditListing (pure): the table', () => {
  const idx = (seq: number, names: string[]) => ({
    format: 'tsmigrate-index/1' as const, store: 'a'.repeat(32), seq,
    snapshots: names.map((n) => ({ id: `web-${n}`, name: n, container: 'web', createdAt: '2026-12-06T08:00:00.000Z', meta: 'b'.repeat(64) })),
  });
  for (const [i, seen, ok] of [[idx(3, []), null, true], [idx(3, []), 3, true], [idx(3, []), 2, true], [idx(2, []), 3, false], [null, null, true], [null, 1, false]] as const) {
    const run = () => checkNotRolledBack(i, seen, 'loc');
    if (ok) run();
    else assert.throws(run, integrity(/rolled back|lost its index/));
  }
  assert.deepEqual(auditListing(idx(1, ['a', 'b', 'c']), ['b', 'd']), {
    missing: idx(1, ['a', 'c']).snapshots,
    strays: ['d'],
  });
});

test('property: parsing a mutated index throws only typed errors; what it accepts is bounded and well-formed', () => {
  const storeId = 'c'.repeat(32);
  const base = {
    format: 'tsmigrate-index/1', store: storeId, seq: 4,
    snapshots: [{ id: 'web-20261206t080000z-abcdef', name: 'web-20261206t080000z-abcdef', container: 'web', createdAt: '2026-12-06T08:00:00.000Z', meta: 'd'.repeat(64) }],
  };
  const value = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }));
  fc.assert(
    fc.property(fc.constantFrom('', 'format', 'store', 'seq', 'snapshots', 'extra', 'entry.id', 'entry.name', 'entry.meta', 'entry.createdAt', 'entry.extra', 'raw'), value, fc.uint8Array({ maxLength: 200 }), (field, v, raw) => {
      const doc = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
      if (field.startsWith('entry.')) (doc['snapshots'] as Array<Record<string, unknown>>)[0]![field.slice(6)] = v;
      else if (field) doc[field] = v;
      const bytes = field === 'raw' ? Buffer.from(raw) : Buffer.from(JSON.stringify(doc));
      try {
        const got = parseIndex(bytes, storeId, 'loc');
        assert.ok(Number.isSafeInteger(got.seq) && got.seq >= 0 && got.store === storeId);
        for (const e of got.snapshots) assert.ok(/^[0-9a-f]{64}$/.test(e.meta) && e.id.length <= 128 && e.name.length <= 128 && isValidName(e.container) && !/[\x00-\x1f]/.test(e.createdAt));
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(isTsmError(e) && e.code === 'EINTEGRITY', `untyped error ${String(e)}`);
      }
    }),
    { numRuns: fuzzRuns() },
  );
});

test('indexSeenIn: the highest number seen, never lowered by raises racing each other', async () => {
  const root = await tmp();
  try {
    const seen = indexSeenIn(root);
    const id = 'e'.repeat(32);
    assert.equal(await seen.get(id), null);
    await Promise.all([5, 3, 9, 7, 1, 8, 2].map((n) => seen.raise(id, n)));
    assert.equal(await seen.get(id), 9);
    await seen.raise(id, 4);
    assert.equal(await seen.get(id), 9);
    await seen.raise(id, 10);
    assert.equal(await seen.get(id), 10);
    assert.deepEqual(await fs.readdir(path.join(root, 'store-index', id)), ['10']);
    assert.equal((await fs.stat(path.join(root, 'store-index', id))).mode & 0o077, 0);
    await assert.rejects(seen.get('../etc'), /invalid store id/);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
