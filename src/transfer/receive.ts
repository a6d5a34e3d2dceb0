import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { LiveImageWriter } from './live-images.js';
import { pipeline } from 'node:stream/promises';
import { DecompressStream } from 'zstd-napi';
import { extractTar, type ExtractOptions } from '../archive/safe-extract.js';
import { TsmError } from '../errors/errors.js';

/** Counts and hashes the bytes as they pass. */
export class Meter extends Transform {
  bytes = 0;
  private readonly h = createHash('sha256');
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.bytes += chunk.length;
    this.h.update(chunk);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
  digest(): string {
    return this.h.digest('hex');
  }
}

/**
 * Unpack a tar stream (zstd or not) arriving from a peer into `dir`, hashing the
 * bytes as received (the source compares the hash with what it sent).
 */
export async function receiveTar(
  data: Readable,
  dir: string,
  o: { compression: 'zstd' | 'none' } & ExtractOptions,
): Promise<{ bytes: number; sha256: string }> {
  const meter = new Meter();
  // pipeline (not pipe): it also notices a stream that was destroyed before we got it
  const upstream = pipeline(data, meter);
  let src: Readable = meter;
  if (o.compression === 'zstd') src = meter.pipe(new DecompressStream());
  upstream.catch((e: Error) => src.destroy(e));
  const { compression: _c, ...opts } = o;
  await extractTar(src, dir, opts);
  // drain anything after the tar's end-of-archive blocks so that the hash covers every byte sent
  src.resume();
  await upstream;
  return { bytes: meter.bytes, sha256: meter.digest() };
}

/**
 * Write live image records (see live-images.ts), zstd or not, into `dir`, hashing the bytes as received;
 * `beforeWrite(n)` is told of every n bytes about to be written.
 */
export async function receiveRecords(data: Readable, dir: string, compression: 'zstd' | 'none', beforeWrite?: (n: number) => void): Promise<{ bytes: number; sha256: string }> {
  const meter = new Meter();
  if (compression === 'zstd') await pipeline(data, meter, new DecompressStream(), new LiveImageWriter(dir, beforeWrite));
  else await pipeline(data, meter, new LiveImageWriter(dir, beforeWrite));
  return { bytes: meter.bytes, sha256: meter.digest() };
}

/** Throws when a stream did not arrive as it was sent. */
export function assertSameHash(what: string, sent: string, received: string): void {
  if (sent !== received) {
    throw new TsmError('EINTEGRITY', `the ${what} arrived corrupted: sha256 ${received.slice(0, 12)}… on the peer, ${sent.slice(0, 12)}… sent`, {
      fix: 'nothing was changed; retry the move, and if it happens again check the network path and memory of both hosts',
    });
  }
}
