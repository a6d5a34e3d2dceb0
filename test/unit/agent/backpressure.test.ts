import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectAgent, serveAgent } from '../../../src/agent/protocol/rpc.js';
import { MID, digestStream, fakeAgent, socketPair } from './helpers.js';

const MiB = 1024 * 1024;

test('64 MiB arrive intact; a slow consumer stalls the sender instead of filling memory', async (t) => {
  const TOTAL = 64 * MiB;
  const CHUNK = 64 * 1024;
  const sent = createHash('sha256');
  let produced = 0;
  let consumed = 0;
  let maxInFlight = 0;
  let maxBuffered = 0;
  const source = new Readable({
    highWaterMark: CHUNK,
    read() {
      if (produced >= TOTAL) return void this.push(null);
      const c = randomBytes(CHUNK);
      sent.update(c);
      produced += c.length;
      this.push(c);
    },
  });

  const { a, b, cleanup } = await socketPair();
  const impl = fakeAgent({
    // reads, then dawdles 3 ms per 64 KiB (about 20 MiB/s): far slower than the socket
    putImages: (_p, data) => digestStream(data, async (n) => {
      maxInFlight = Math.max(maxInFlight, produced - consumed); // sent but not yet consumed, this chunk included
      consumed += n;
      await sleep(Math.ceil(n / CHUNK) * 3);
    }),
  });
  const server = serveAgent(b, impl);
  const client = await connectAgent(a);
  // warm up at full speed, so the heap has its working size before the baseline
  const warm = Buffer.alloc(CHUNK);
  await client.probe({ bytes: 16 * MiB }, Readable.from((function* () { for (let i = 0; i < 256; i++) yield warm; })()));
  const rss0 = process.memoryUsage().rss;
  let rssPeak = rss0;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    maxBuffered = Math.max(maxBuffered, server.bufferedBytes());
  }, 2);
  try {
    const r = await client.putImages({ migrationId: MID, compression: 'none' }, source);
    t.diagnostic(`in flight ${(maxInFlight / MiB).toFixed(2)} MiB, agent buffered ${(maxBuffered / MiB).toFixed(2)} MiB, rss +${((rssPeak - rss0) / MiB).toFixed(1)} MiB`);
    assert.equal(r.bytes, TOTAL);
    assert.equal(r.digest, `sha256:${sent.digest('hex')}`);
    // kernel socket buffers + the writer's 16 KiB + the stream's 1 MiB + one frame: far below 64 MiB
    assert.ok(maxInFlight < 12 * MiB, `in flight at most ${(maxInFlight / MiB).toFixed(1)} MiB`);
    assert.ok(maxBuffered < 3 * MiB, `the agent held at most ${(maxBuffered / MiB).toFixed(1)} MiB`);
    assert.ok(rssPeak - rss0 < 48 * MiB, `rss grew ${((rssPeak - rss0) / MiB).toFixed(1)} MiB`);
  } finally {
    clearInterval(sampler);
    await client.close();
    await cleanup();
  }
});
