import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WarmMemory } from '../../../src/util/warm-memory.js';

const MiB = 1 << 20;
/** resident anonymous memory of this process (RssAnon), bytes */
const rssAnon = (): number => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

test('WarmMemory: the reserve is resident at once and goes back to the kernel as released', async () => {
  const before = rssAnon();
  const w = await WarmMemory.reserve(96 * MiB, { keepFree: 0 });
  assert.equal(w.bytes, 96 * MiB);
  assert.ok(rssAnon() - before >= 90 * MiB, `faulted in: RssAnon grew by ${(rssAnon() - before) / MiB} MiB`);
  w.release(40 * MiB);
  assert.equal(w.bytes, 56 * MiB);
  assert.ok(rssAnon() - before <= 60 * MiB, `released: RssAnon is ${(rssAnon() - before) / MiB} MiB above the start`);
  w.releaseAll();
  assert.equal(w.bytes, 0);
  assert.ok(rssAnon() - before < 8 * MiB);
  w.release(MiB); // nothing left: a no-op
  assert.equal(w.bytes, 0);
});

test('WarmMemory: beforeUse gives back ahead of the writes, 8 MiB at a time', async () => {
  const w = await WarmMemory.reserve(32 * MiB, { keepFree: 0 });
  w.beforeUse(1);
  assert.equal(w.bytes, 24 * MiB, 'the first byte frees a whole step');
  for (let i = 0; i < 8 * 1024 - 1; i++) w.beforeUse(1024);
  assert.equal(w.bytes, 24 * MiB, 'writes inside the freed step take nothing more');
  w.beforeUse(1024 + 1);
  assert.equal(w.bytes, 16 * MiB);
  w.beforeUse(100 * MiB);
  assert.equal(w.bytes, 0, 'more use than reserve: everything goes, nothing throws');
  w.beforeUse(MiB);
  assert.equal(w.bytes, 0);
});

test('WarmMemory: free memory is checked before every chunk (two reservations at once cannot overshoot)', async () => {
  // a host with 1 GiB + 100 MiB available and keepFree 1 GiB, where someone else takes 30 MiB
  // after our first chunk: the reservation stops at what is left (64 + 6 MiB), not at the 400 asked for
  // (what the kernel would report: 1124, then less our 64 and their 30, then less our 6 more)
  const seen = [1124, 1030, 1024];
  let calls = 0;
  const w = await WarmMemory.reserve(400 * MiB, { keepFree: 1024 * MiB, freeMemory: () => (seen[calls++] ?? 1024) * MiB });
  assert.equal(w.bytes, 70 * MiB);
  assert.equal(calls, 3, 'checked before every chunk');
  assert.equal(w.bytes % (64 << 10), 0, 'whole pages');
  assert.ok(rssAnon() > 60 * MiB, 'and it is resident');
  w.releaseAll();
  assert.equal(w.bytes, 0);
});

test('WarmMemory: bounded by what must stay free, and stops when aborted', async () => {
  const none = await WarmMemory.reserve(64 * MiB, { keepFree: Number.MAX_SAFE_INTEGER });
  assert.equal(none.bytes, 0, 'nothing when it would leave less than keepFree');
  const ac = new AbortController();
  ac.abort();
  const aborted = await WarmMemory.reserve(64 * MiB, { keepFree: 0, signal: ac.signal });
  assert.equal(aborted.bytes, 0);
  const some = await WarmMemory.reserve(200 * MiB, { keepFree: 0 });
  assert.equal(some.bytes, 200 * MiB, 'several chunks');
  some.release(70 * MiB); // across a chunk boundary (chunks are 64 MiB)
  assert.equal(some.bytes, 130 * MiB);
  some.releaseAll();
  assert.equal(some.bytes, 0);
});

test('preallocateFile: the file is allocated up front, within the same bound; nothing (and no file) when nothing is free', async () => {
  const { promises: fs } = await import('node:fs');
  const { preallocateFile } = await import('../../../src/util/warm-memory.js');
  const dir = await fs.mkdtemp('/dev/shm/tsm-prealloc-');
  try {
    const f = path.join(dir, 'pool');
    assert.equal(await preallocateFile(f, 100 * MiB), 100 * MiB);
    const st = await fs.stat(f);
    assert.ok(st.blocks * 512 >= 100 * MiB, `allocated: ${st.blocks * 512}`);
    assert.equal(st.mode & 0o077, 0);
    // another 100 MiB with 70 MiB above what must stay free, read again before every chunk: 64 + 6 MiB
    let calls = 0;
    const g = path.join(dir, 'pool2');
    assert.equal(await preallocateFile(g, 100 * MiB, { keepFree: 0, freeMemory: () => [70 * MiB, 6 * MiB][calls++] ?? 0 }), 70 * MiB);
    const h = path.join(dir, 'pool3');
    assert.equal(await preallocateFile(h, 100 * MiB, { keepFree: 0, freeMemory: () => 0 }), 0);
    await assert.rejects(fs.stat(h), { code: 'ENOENT' });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('poolSize: only on tmpfs, and only with as much again left free for the other images', async () => {
  const { poolSize } = await import('../../../src/util/warm-memory.js');
  assert.equal(poolSize(100 * MiB, { tmpfs: true, freeBytes: 1024 * MiB }), 100 * MiB);
  assert.equal(poolSize(100 * MiB, { tmpfs: true, freeBytes: 200 * MiB }), 100 * MiB);
  assert.equal(poolSize(100 * MiB, { tmpfs: true, freeBytes: 199 * MiB }), 0, 'a small tmpfs: no pool');
  assert.equal(poolSize(100 * MiB, { tmpfs: false, freeBytes: 10_000 * MiB }), 0, 'a disk: no pool');
  assert.equal(poolSize(0, { tmpfs: true, freeBytes: 10_000 * MiB }), 0);
  assert.equal(poolSize(100 * MiB + 5, { tmpfs: true, freeBytes: 10_000 * MiB }), 100 * MiB, 'whole 64 KiB units');
});
