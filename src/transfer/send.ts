import { randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { CompressStream, compress } from 'zstd-napi';
import { packTree } from '../archive/pack.js';
import type { StreamResult } from '../agent/api.js';
import { Meter } from './receive.js';

export interface SendStats {
  bytes: number;
  tarBytes: number;
  sha256: string;
  ms: number;
}

/**
 * Stream a directory tree (tar, optionally zstd) to a peer call, hashing what
 * goes on the wire; resolves when the peer has unpacked it. The peer's hash of
 * what arrived is returned beside ours, for prepare to check.
 */
export async function sendTree(
  dir: string,
  call: (data: Readable) => Promise<StreamResult>,
  o: { zstd: boolean; include?: (rel: string) => boolean; signal?: AbortSignal; onBytes?: (n: number) => void; corrupt?: boolean; live?: boolean },
): Promise<SendStats & { peer: StreamResult }> {
  const t0 = performance.now();
  const tar = packTree(dir, { ...(o.include ? { include: o.include } : {}), ...(o.signal ? { signal: o.signal } : {}), live: Boolean(o.live) });
  const tarMeter = new Meter();
  const counted = tar.pipe(tarMeter);
  const wire = o.zstd ? counted.pipe(new CompressStream({ compressionLevel: 1 })) : counted;
  const meter = new Meter(o.onBytes);
  tar.on('error', (e) => meter.destroy(e));
  wire.on('error', (e) => meter.destroy(e));
  let out: Readable = wire.pipe(meter);
  if (o.corrupt) out = out.pipe(flipOneByte());
  // a failure on our side (an interrupt, an unreadable file) may come before the
  // consumer has attached: never let it be an unhandled 'error', and stop waiting
  const failed = new Promise<never>((_r, reject) => {
    for (const s of new Set([tar, meter, out])) s.on('error', reject);
  });
  failed.catch(() => undefined);
  const peer = await Promise.race([call(out), failed]);
  return { bytes: meter.bytes, tarBytes: tarMeter.bytes, sha256: meter.digest(), ms: performance.now() - t0, peer };
}

/** A fault injector for tests: flips one byte in the middle of the first big chunk. */
function flipOneByte() {
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _e: BufferEncoding, cb: (e: Error | null, d: Buffer) => void) {
      if (!done && chunk.length > 1024) {
        const c = Buffer.from(chunk);
        c[c.length >> 1] = (c[c.length >> 1] ?? 0) ^ 0x55;
        done = true;
        return cb(null, c);
      }
      cb(null, chunk);
    },
  });
}

/**
 * Measure the link: a small warm-up (the first MiBs of a fresh SSH channel run
 * far below its steady rate), then `bytes` of incompressible data timed.
 */
export async function probeLink(call: (data: Readable) => Promise<StreamResult>, bytes = 32 << 20): Promise<number> {
  const chunk = randomBytes(1 << 20);
  const send = (n: number) =>
    call(Readable.from((function* () {
      for (let i = 0; i < n; i++) yield chunk;
    })()));
  await send(4);
  const n = Math.ceil(bytes / chunk.length);
  const t0 = performance.now();
  await send(n);
  return (n * chunk.length) / ((performance.now() - t0) / 1000);
}

/** Measure zstd level 1 on heap-like data (half random, half text): bytes/s and ratio. */
export function measureZstd(bytes = 8 << 20): { bps: number; ratio: number } {
  const half = bytes >> 1;
  const text = Buffer.alloc(half, 'tsmigrate heap page with some repeated structure 0123456789 ');
  const data = Buffer.concat([randomBytes(half), text]);
  compress(data.subarray(0, 1 << 20), { compressionLevel: 1 }); // warm up
  const t0 = performance.now();
  const out = compress(data, { compressionLevel: 1 });
  const s = (performance.now() - t0) / 1000;
  return { bps: data.length / s, ratio: out.length / data.length };
}
