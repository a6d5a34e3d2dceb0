import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChunkStore, type WriteCounters } from '../../../src/store/chunk-store.js';
import { deriveKey } from '../../../src/store/keys.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { RemoteBackend } from '../../../src/store/remote-backend.js';
import type { StoreBackend } from '../../../src/store/backend.js';
import { SNAPSHOT_FORMAT, type SnapshotMeta } from '../../../src/store/snapshot.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { setup } from '../agent/helpers.js';
import { sampleInfo } from '../../helpers/manifests.js';

const counters = (): WriteCounters => ({ logical: 0, chunks: 0, newChunks: 0, newBytes: 0 });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function* pieces(b: Buffer) {
  for (let i = 0; i < b.length; i += 1 << 20) yield b.subarray(i, i + (1 << 20));
}
async function readAll(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c);
  return Buffer.concat(out);
}

function meta(id: string, container: string, createdAt: string, criu: { bytes: number; sha256: string; chunks: number }, upper: typeof criu): SnapshotMeta {
  return {
    format: SNAPSHOT_FORMAT, id, container, createdAt, tag: null, schedule: null, epoch: 0,
    checkpoint: sampleInfo(id, container),
    streams: { criu, upper },
  };
}

/** Both backends: a directory here, and the same served by an agent over a socket (the RPC path). */
async function backends(dir: string): Promise<Array<{ name: string; backend: StoreBackend; make: (sub: string) => StoreBackend; close: () => Promise<void> }>> {
  const t = await setup();
  const remote = (sub: string) => new RemoteBackend(t.client, path.join(dir, sub), 'peer', async () => undefined);
  return [
    { name: 'local', backend: new LocalBackend(path.join(dir, 'local')), make: (sub) => new LocalBackend(path.join(dir, sub)), close: async () => undefined },
    { name: 'remote', backend: remote('remote'), make: remote, close: async () => { await t.client.close(); await t.cleanup(); } },
  ];
}

test('write, commit, list, read back; a second write of similar data adds little; encrypted stores hide content', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-store-'));
  try {
    for (const b of await backends(dir)) {
      for (const key of [null, deriveKey(randomBytes(32))]) {
        const sub = key ? `${b.name}-enc` : b.name;
        const backend = key ? b.make(sub) : b.backend;
        const store = await ChunkStore.open(backend, { create: true, key, seen: null });
        const memory = Buffer.concat([randomBytes(6 << 20), Buffer.alloc(2 << 20, 'heap ')]);
        const c1 = counters();
        const s1 = await store.writeStream(pieces(memory), c1);
        const u1 = await store.writeStream(pieces(Buffer.from('upper layer')), c1);
        await store.commit({ meta: meta('web-1', 'web', '2026-01-01T00:00:00.000Z', s1.ref, u1.ref), ids: { criu: s1.ids, upper: u1.ids } });
        assert.equal(s1.ref.sha256, sha(memory));
        // 5% changed in one place
        const changed = Buffer.from(memory);
        randomBytes(400_000).copy(changed, 3 << 20);
        const c2 = counters();
        const s2 = await store.writeStream(pieces(changed), c2);
        await store.commit({ meta: meta('web-2', 'web', '2026-01-01T01:00:00.000Z', s2.ref, u1.ref), ids: { criu: s2.ids, upper: u1.ids } });
        assert.ok(c2.newBytes < c1.newBytes * 0.15, `${b.name}: second write added ${c2.newBytes} of ${c1.newBytes}`);
        const listed = await store.list('web');
        assert.deepEqual(listed.snapshots.map((s) => s.id), ['web-1', 'web-2']);
        const back = await store.load('web-2');
        assert.deepEqual(await readAll(store.readStream(back.ids.criu, 'web-2')), changed);
        assert.deepEqual(await store.check('web-1'), []);
        if (key) {
          // reopen without the key, or with another key: refused with a clear error
          await assert.rejects(ChunkStore.open(new LocalBackend(path.join(dir, sub)), { create: false, key: null, seen: null }), /is encrypted/);
          await assert.rejects(ChunkStore.open(new LocalBackend(path.join(dir, sub)), { create: false, key: deriveKey(randomBytes(32)), seen: null }), /is not the key/);
          const files = await fs.readdir(path.join(dir, sub, 'chunks'), { recursive: true });
          for (const f of files.slice(0, 20)) {
            const p = path.join(dir, sub, 'chunks', String(f));
            if ((await fs.stat(p)).isFile()) assert.equal((await fs.readFile(p)).includes(Buffer.from('heap heap heap')), false);
          }
        }
        // files are root-only
        const st = await fs.stat(path.join(dir, sub, 'snapshots', `${store.nameOf('web-1')}.meta`));
        assert.equal(st.mode & 0o077, 0);
      }
      await b.close();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('a corrupted chunk is found by check and verify, refused on read; gc keeps only what snapshots reference', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-store-'));
  try {
    for (const b of await backends(dir)) {
      const store = await ChunkStore.open(b.backend, { create: true, key: null, seen: null });
      const a = randomBytes(2 << 20);
      const c = counters();
      const s1 = await store.writeStream(pieces(a), c);
      const empty = await store.writeStream(pieces(Buffer.alloc(0)), c);
      await store.commit({ meta: meta('x-1', 'x', '2026-01-01T00:00:00.000Z', s1.ref, empty.ref), ids: { criu: s1.ids, upper: empty.ids } });
      const bdata = randomBytes(2 << 20);
      const s2 = await store.writeStream(pieces(bdata), c);
      await store.commit({ meta: meta('x-2', 'x', '2026-01-01T00:01:00.000Z', s2.ref, empty.ref), ids: { criu: s2.ids, upper: empty.ids } });
      // corrupt one chunk of x-2
      const victim = s2.ids.subarray(32, 64).toString('hex');
      const root = path.join(dir, b.name);
      const file = path.join(root, 'chunks', victim.slice(0, 2), victim);
      const obj = await fs.readFile(file);
      obj[obj.length >> 1]! ^= 0xff;
      await fs.writeFile(file, obj);
      assert.deepEqual(await store.check('x-1'), []);
      const problems = await store.check('x-2');
      assert.equal(problems.length, 1);
      assert.match(problems[0]!, /corrupted: checksum mismatch/);
      const report = await store.backend.verify(null);
      assert.deepEqual(report.bad.map((x) => x.id), [victim]);
      await assert.rejects(readAll(store.readStream(s2.ids, 'x-2')), (e) => isTsmError(e) && e.code === 'EINTEGRITY');
      // remove x-2 and collect: x-1 still reads back whole, the store shrank
      const before = await store.backend.stats();
      await store.removeSnapshots(['x-2']);
      const freed = await store.backend.collect();
      const after = await store.backend.stats();
      assert.equal(after.chunks, before.chunks - freed.chunks);
      assert.ok(freed.chunks >= s2.ref.chunks - 1, `${freed.chunks} freed`);
      assert.deepEqual(await readAll(store.readStream((await store.load('x-1')).ids.criu, 'x-1')), a);
      assert.equal((await store.backend.verify(null)).bad.length, 0);
      await b.close();
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('bad store paths and ids are refused before anything is written', async () => {
  assert.throws(() => new LocalBackend('relative/path'), /must be absolute/);
  assert.throws(() => new LocalBackend('/srv/../etc'), /must be absolute and normalised/);
  const t = await setup();
  try {
    await assert.rejects(t.client.storeOpen({ path: '/proc/self', create: null }), /is not allowed/);
    await assert.rejects(t.client.storeOpen({ path: '/', create: null }), /is not allowed/);
    await assert.rejects(t.client.storeGetSnapshot({ path: '/tmp/x', id: '../../etc/passwd', offset: 0 }), (e) => isTsmError(e) && e.code === 'EPROTO');
    await assert.rejects(t.client.storeHas({ path: '/tmp/x', ids: ['zz'] }), (e) => isTsmError(e) && e.code === 'EPROTO');
  } finally {
    await t.client.close();
    await t.cleanup();
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-store-'));
  try {
    await fs.writeFile(path.join(dir, 'precious'), 'data');
    await assert.rejects(ChunkStore.open(new LocalBackend(dir), { create: true, key: null, seen: null }), /non-empty directory that is not a tsmigrate store/);
    assert.deepEqual(await fs.readdir(dir), ['precious']);
    await assert.rejects(ChunkStore.open(new LocalBackend(path.join(dir, 'none')), { create: false, key: null, seen: null }), /no checkpoint store at/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
