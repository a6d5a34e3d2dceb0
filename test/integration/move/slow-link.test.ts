/**
 * test/helpers/slow-link.ts: the relay holds its rate. A plain transfer through
 * it takes as long as the limit says, in each direction; the move suite uses
 * it in front of a peer's sshd (faults.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { eventually } from '../../helpers/cli.js';
import { startSlowLink } from '../../helpers/slow-link.js';

/** A server on 127.0.0.1 that, per connection, counts what it receives and sends `reply` bytes. */
async function sink(reply: number): Promise<{ port: number; received: () => { bytes: number; firstMs: number; lastMs: number }; close: () => void }> {
  const got = { bytes: 0, firstMs: 0, lastMs: 0 };
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => {
      const now = performance.now();
      if (!got.bytes) got.firstMs = now;
      got.bytes += d.length;
      got.lastMs = now;
    });
    s.on('error', () => undefined);
    if (reply) s.write(Buffer.alloc(reply, 1), () => s.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, received: () => got, close: () => server.close() };
}

test('a 3 MB/s slow link: 6 MB take 2 s each way, through one connection, not much less, not much more', async () => {
  const rate = 3_000_000;
  const bytes = 6_000_000;
  const far = await sink(bytes);
  const link = await startSlowLink({ listen: '127.0.0.6', target: { host: '127.0.0.1', port: far.port }, bytesPerSecond: rate });
  try {
    const t0 = performance.now();
    let down = 0;
    let downDone = 0;
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(link.port, link.host, () => c.end(Buffer.alloc(bytes, 2)));
      c.on('data', (d: Buffer) => {
        down += d.length;
        if (down === bytes) downDone = performance.now();
      });
      c.on('error', reject);
      c.on('close', () => resolve());
    });
    // the far end may still be receiving the last pieces the relay paces out
    const up = await eventually(async () => far.received().bytes >= bytes && far.received(), 5000);
    assert.equal(up.bytes, bytes);
    assert.equal(down, bytes);
    const upS = (up.lastMs - t0) / 1000;
    const downS = (downDone - t0) / 1000;
    // the first few hundred KiB may sit in socket buffers; the pacing is what bounds the total
    for (const [dir, s] of [['up', upS], ['down', downS]] as const) {
      const mbps = bytes / s / 1e6;
      assert.ok(mbps <= (rate / 1e6) * 1.1, `${dir}: ${mbps.toFixed(2)} MB/s through a ${rate / 1e6} MB/s link`);
      assert.ok(mbps >= (rate / 1e6) * 0.7, `${dir}: ${mbps.toFixed(2)} MB/s, well under the ${rate / 1e6} MB/s limit`);
    }
    assert.deepEqual(link.relayed, { up: bytes, down: bytes });
  } finally {
    await link.close();
    far.close();
  }
});
