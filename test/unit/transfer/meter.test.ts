import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Meter } from '../../../src/transfer/receive.js';

async function run(data: Buffer, chunk: number, checksum?: 'sha256' | 'crc32'): Promise<{ digest: string; bytes: number; out: Buffer }> {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
  const meter = new Meter(undefined, checksum);
  const got: Buffer[] = [];
  await pipeline(Readable.from(parts), meter, new Writable({ write: (c: Buffer, _e, cb) => (got.push(c), cb()) }));
  return { digest: meter.digest(), bytes: meter.bytes, out: Buffer.concat(got) };
}

test('Meter: sha256 by default, CRC-32 when asked, whatever the chunking; the bytes pass unchanged', async () => {
  const data = randomBytes(300_001);
  const sha = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const crc = `crc32:${zlib.crc32(data).toString(16).padStart(8, '0')}`;
  for (const chunk of [1 << 20, 65536, 4099, 7]) {
    const a = await run(data, chunk);
    assert.equal(a.digest, sha);
    assert.equal(a.bytes, data.length);
    assert.ok(a.out.equals(data));
    const b = await run(data, chunk, 'crc32');
    assert.equal(b.digest, crc);
    assert.match(b.digest, /^crc32:[0-9a-f]{8}$/);
  }
  assert.equal((await run(Buffer.alloc(0), 1, 'crc32')).digest, 'crc32:00000000');
});

test('Meter: one flipped bit, a dropped byte or two swapped chunks change the CRC-32', async () => {
  const data = randomBytes(1 << 20);
  const base = (await run(data, 65536, 'crc32')).digest;
  const flipped = Buffer.from(data);
  flipped[123_456]! ^= 0x01;
  assert.notEqual((await run(flipped, 65536, 'crc32')).digest, base);
  assert.notEqual((await run(data.subarray(1), 65536, 'crc32')).digest, base);
  const swapped = Buffer.concat([data.subarray(65536, 131072), data.subarray(0, 65536), data.subarray(131072)]);
  assert.notEqual((await run(swapped, 65536, 'crc32')).digest, base);
});
