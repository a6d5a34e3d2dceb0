import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chunkStream, MAX_CHUNK, MIN_CHUNK } from '../../../src/store/chunker.js';

async function chunks(data: Buffer, piece: number): Promise<Buffer[]> {
  async function* src() {
    for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
  }
  const out: Buffer[] = [];
  for await (const c of chunkStream(src())) out.push(Buffer.from(c));
  return out;
}
const h = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('chunks reassemble the input, respect the size bounds, and do not depend on how the input was split', async () => {
  const data = randomBytes(3 << 20);
  const a = await chunks(data, 1 << 20);
  const b = await chunks(data, 777);
  assert.deepEqual(Buffer.concat(a), data);
  assert.deepEqual(a.map(h), b.map(h));
  for (const c of a.slice(0, -1)) assert.ok(c.length >= MIN_CHUNK && c.length <= MAX_CHUNK, `${c.length}`);
  const avg = data.length / a.length;
  assert.ok(avg > 16 << 10 && avg < 64 << 10, `average ${avg}`);
});

test('an insertion changes only the chunks around it', async () => {
  const data = randomBytes(4 << 20);
  const edited = Buffer.concat([data.subarray(0, 2 << 20), Buffer.from('inserted bytes'), data.subarray(2 << 20)]);
  const a = new Set((await chunks(data, 65536)).map(h));
  const b = await chunks(edited, 65536);
  const fresh = b.filter((c) => !a.has(h(c)));
  assert.ok(fresh.length >= 1 && fresh.length <= 3, `${fresh.length} new chunks`);
});

test('long runs of one byte are cut at the maximum size', async () => {
  const zeros = await chunks(Buffer.alloc(1 << 20), 4096);
  assert.ok(zeros.every((c) => c.length === MAX_CHUNK));
  assert.equal((await chunks(Buffer.alloc(0), 1)).length, 0);
  assert.deepEqual((await chunks(Buffer.from('tiny'), 1)).map(String), ['tiny']);
});
