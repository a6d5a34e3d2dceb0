import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { chunksOf } from '../../../src/util/chunks.js';

test('chunksOf: the pushed chunks themselves, in order, never joined', async () => {
  const parts = [Buffer.alloc(10, 1), Buffer.alloc(1 << 20, 2), Buffer.alloc(3, 3), Buffer.alloc(70_000, 4)];
  const p = new PassThrough();
  for (const c of parts) p.write(c); // all buffered before the consumer starts: read() would join them
  p.end();
  const got: Buffer[] = [];
  for await (const c of chunksOf(p)) got.push(c);
  assert.equal(got.length, parts.length);
  got.forEach((c, i) => assert.equal(c.buffer, parts[i]!.buffer, `chunk ${i} is the pushed Buffer, not a copy`));
});

test('chunksOf: a slow consumer pauses the source (bounded queue)', async () => {
  let pulled = 0;
  const src = new Readable({
    read() {
      pulled++;
      this.push(pulled > 100 ? null : Buffer.alloc(1024));
    },
    highWaterMark: 1024,
  });
  let n = 0;
  for await (const _c of chunksOf(src, 4)) {
    n++;
    if (n === 5) {
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(pulled < 20, `only a few chunks ahead of the consumer (${pulled} pulled)`);
    }
  }
  assert.equal(n, 100);
});

test('chunksOf: errors, premature close and an early exit', async () => {
  const e1 = new PassThrough();
  setImmediate(() => e1.destroy(new Error('disk on fire')));
  await assert.rejects(async () => {
    for await (const _c of chunksOf(e1)) void 0;
  }, /disk on fire/);
  const e2 = new PassThrough();
  e2.write('x');
  setImmediate(() => e2.destroy());
  await assert.rejects(async () => {
    for await (const _c of chunksOf(e2)) void 0;
  }, (e: NodeJS.ErrnoException) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');
  const e3 = new PassThrough();
  e3.write('a');
  e3.write('b');
  for await (const _c of chunksOf(e3)) break;
  assert.ok(e3.destroyed, 'leaving the loop destroys the source');
});
