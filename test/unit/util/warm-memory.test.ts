import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
