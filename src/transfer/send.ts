import { randomBytes } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { CompressStream, compress } from 'zstd-napi';
import { packTree } from '../archive/pack.js';
import type { Checksum, StreamResult } from '../agent/api.js';
import { Meter } from './receive.js';

export interface SendStats {
  bytes: number;
  tarBytes: number;
  /** of the bytes on the wire: "sha256:<hex>" or "crc32:<hex>" */
  digest: string;
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
  o: SendOptions & { include?: (rel: string) => boolean; live?: boolean },
): Promise<SendStats & { peer: StreamResult }> {
  const tar = packTree(dir, { ...(o.include ? { include: o.include } : {}), ...(o.signal ? { signal: o.signal } : {}), live: Boolean(o.live) });
  return sendReadable(tar, call, o);
}

export interface SendOptions {
  zstd: boolean;
  /** default sha256; the peer must be asked for the same */
  checksum?: Checksum;
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
  /** test hook: flip one byte on the wire */
  corrupt?: boolean;
}

/**
 * Stream any source (a tar, the live image records) to a peer call, zstd if
 * asked, hashing what goes on the wire; resolves when the peer has taken it all.
 */
export async function sendReadable<R extends StreamResult>(src: Readable, call: (data: Readable) => Promise<R>, o: SendOptions): Promise<SendStats & { peer: R }> {
  const t0 = performance.now();
  // counted, not hashed: the hash that matters is of the bytes on the wire
  const tarMeter = new Counter();
  const counted = src.pipe(tarMeter);
  const wire = o.zstd ? counted.pipe(new CompressStream({ compressionLevel: 1 })) : counted;
  const meter = new Meter(o.onBytes, o.checksum);
  src.on('error', (e) => meter.destroy(e));
  wire.on('error', (e) => meter.destroy(e));
  let out: Readable = wire.pipe(meter);
  if (o.corrupt) out = out.pipe(flipOneByte());
  // a failure on our side (an interrupt, an unreadable file) may come before the
  // consumer has attached: never let it be an unhandled 'error', and stop waiting
  const failed = new Promise<never>((_r, reject) => {
    for (const s of new Set([src, meter, out])) s.on('error', reject);
  });
  failed.catch(() => undefined);
  // aborted (an interrupt, the downtime bound): stop at once, also while the link holds the
  // stream back (a source blocked on back-pressure never looks at the signal itself)
  const onAbort = () => {
    const e = o.signal!.reason as Error;
    src.destroy(e);
    meter.destroy(e);
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const peer = await Promise.race([call(out), failed]);
    return { bytes: meter.bytes, tarBytes: tarMeter.bytes, digest: meter.digest(), ms: performance.now() - t0, peer };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** Counts the bytes as they pass. */
class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
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
 * Measure what one stream really moves per second, end to end (this process,
 * the link, the peer), for heap-like data (half random, half text), sent plain
 * and/or through zstd level 1: a rate counts the bytes before compression.
 * A plain warm-up first (the first MiBs through a fresh channel, sshd and peer
 * process run several times slower than the steady rate: JIT, buffers), then
 * the modes alternate for `rounds` rounds and each keeps its best round, so
 * that neither is measured colder than the other. Everything happens before the
 * freeze, so it also warms the path the memory images take.
 */
export async function probeLink(
  call: (data: Readable, compression: 'zstd' | 'none', bytes: number) => Promise<StreamResult>,
  o: { plain: boolean; zstd: boolean; bytes?: number; warmupBytes?: number; rounds?: number },
): Promise<{ plainBps: number; zstdBps: number }> {
  const sample = heapLike(8 << 20);
  const send = (n: number, zstd: boolean) => {
    const src = Readable.from((function* () {
      for (let left = n; left > 0; left -= sample.length) yield left >= sample.length ? sample : sample.subarray(0, left);
    })());
    return call(zstd ? src.pipe(new CompressStream({ compressionLevel: 1 })) : src, zstd ? 'zstd' : 'none', n);
  };
  // a first look: a slow link gets samples of about half a second, not the fast link's 100 MiB
  const t0 = performance.now();
  const first = 2 << 20;
  await send(first, false);
  const rate0 = first / Math.max(0.001, (performance.now() - t0) / 1000);
  const slow = rate0 < 64e6 && o.bytes === undefined;
  const warm = slow ? 0 : (o.warmupBytes ?? 32 << 20);
  if (warm > 0) await send(warm, false);
  const n = slow ? Math.max(1 << 20, Math.round(rate0 / 2)) : (o.bytes ?? 32 << 20);
  const best = { plain: 0, zstd: 0 };
  for (let r = 0; r < (slow ? 1 : (o.rounds ?? 2)); r++) {
    for (const mode of ['plain', 'zstd'] as const) {
      if (!o[mode]) continue;
      const t0 = performance.now();
      await send(n, mode === 'zstd');
      best[mode] = Math.max(best[mode], n / ((performance.now() - t0) / 1000));
    }
  }
  return { plainBps: best.plain, zstdBps: best.zstd };
}

/**
 * Heap-like test data: 64 KiB blocks, alternately random bytes and word salad
 * (no two text blocks alike), which zstd level 1 compresses about as well and
 * as fast as real process memory; a repeated block would flatter it.
 */
export function heapLike(bytes: number): Buffer {
  const words = ('the of and to in is was that for on with as by at from his her they this which container memory checkpoint ' +
    'restore process kernel page frozen image migrate network socket thread value result error request response buffer cache').split(' ');
  const out = Buffer.alloc(bytes);
  const rnd = randomBytes(bytes);
  let w = 0;
  for (let off = 0, i = 0; off < bytes; off += 65536, i++) {
    const end = Math.min(off + 65536, bytes);
    if (i % 2) {
      rnd.copy(out, off, off, end);
      continue;
    }
    let p = off;
    while (p < end) {
      const word = words[(rnd[w++ % rnd.length]! + i) % words.length]!;
      p += out.write(`${word} `, p, end - p, 'latin1');
    }
  }
  return out;
}

/** Measure zstd level 1 on heap-like data (half random, half text): bytes/s and ratio. */
export function measureZstd(bytes = 8 << 20): { bps: number; ratio: number } {
  const data = heapLike(bytes);
  compress(data.subarray(0, 1 << 20), { compressionLevel: 1 }); // warm up
  const t0 = performance.now();
  const out = compress(data, { compressionLevel: 1 });
  const s = (performance.now() - t0) / 1000;
  return { bps: data.length / s, ratio: out.length / data.length };
}
