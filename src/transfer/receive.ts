import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import type { Checksum } from '../agent/api.js';
import type { ImageSum } from './image-sums.js';
import { LiveImageWriter, type LiveImageWriterOptions } from './live-images.js';
import { pipeline } from 'node:stream/promises';
import { inflateZstd } from '../archive/inflate.js';
import { limitError, PRESETS, type InflateLimits, type Limits } from '../archive/limits.js';
import { extractTar, type ExtractOptions } from '../archive/safe-extract.js';
import { TsmError } from '../errors/errors.js';

/** Counts and checksums the bytes as they pass (api.ts Checksum: sha256 by default, or CRC-32). */
export class Meter extends Transform {
  bytes = 0;
  private readonly h;
  private crc = 0;
  constructor(private readonly onBytes?: (n: number) => void, private readonly checksum: Checksum = 'sha256') {
    super();
    this.h = checksum === 'sha256' ? createHash('sha256') : undefined;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.bytes += chunk.length;
    if (this.h) this.h.update(chunk);
    else this.crc = zlib.crc32(chunk, this.crc);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }
  /** "sha256:<64 hex>" or "crc32:<8 hex>" */
  digest(): string {
    return this.h ? `sha256:${this.h.digest('hex')}` : `crc32:${this.crc.toString(16).padStart(8, '0')}`;
  }
}

/** What may follow a tar's end: GNU tar pads to its record size (10 KiB by default). */
const TRAILING_MAX = 1 << 20;

/**
 * Unpack a tar stream (zstd or not) arriving from a peer into `dir`, checksumming the
 * bytes as received (the source compares the digest with what it sent). Bounded by
 * `limits` (decompression, entries, depth, bytes) while it arrives.
 */
export async function receiveTar(
  data: Readable,
  dir: string,
  o: { compression: 'zstd' | 'none'; checksum?: Checksum; limits: Limits } & Omit<ExtractOptions, 'limits'>,
): Promise<{ bytes: number; digest: string }> {
  const meter = new Meter(undefined, o.checksum);
  // pipeline (not pipe): it also notices a stream that was destroyed before we got it
  const upstream = pipeline(data, meter);
  let src: Readable = meter;
  if (o.compression === 'zstd') {
    src = meter.pipe(inflateZstd(o.limits.inflate, o.what ?? 'the stream'));
    // a refused stream stops its sender too (the meter would otherwise wait for a reader); without an error:
    // the meter's pipeline may be over already, and an error then would have no listener
    src.once('error', () => meter.destroy());
  }
  upstream.catch((e: Error) => src.destroy(e));
  const { compression: _c, checksum: _s, limits, ...opts } = o;
  await extractTar(src, dir, { ...opts, limits: limits.tar });
  // read what follows the tar's end-of-archive blocks (a record's padding) so that the hash covers every byte sent; a little, not a stream
  let after = 0;
  for await (const c of src) {
    after += (c as Buffer).length;
    if (after > TRAILING_MAX) {
      src.destroy();
      throw limitError(o.what ?? 'the stream', `goes on for more than ${TRAILING_MAX} bytes after the end of its archive`);
    }
  }
  await upstream;
  return { bytes: meter.bytes, digest: meter.digest() };
}

/**
 * Write live image records (see live-images.ts), zstd or not, into `dir`, checksumming the bytes as received
 * (and each file's bytes: `files`, see image-sums.ts); with the writer's options (warm memory given back ahead of writes, a preallocated pool file).
 */
export async function receiveRecords(
  data: Readable,
  dir: string,
  o: { compression: 'zstd' | 'none'; checksum?: Checksum; inflate?: InflateLimits } & LiveImageWriterOptions,
): Promise<{ bytes: number; digest: string; files: ImageSum[] }> {
  const { compression, checksum, inflate, ...writer } = o;
  const meter = new Meter(undefined, checksum);
  const out = new LiveImageWriter(dir, writer);
  if (compression === 'zstd') await pipeline(data, meter, inflateZstd(inflate ?? PRESETS['criu-images'].inflate, 'the memory images'), out);
  else await pipeline(data, meter, out);
  return { bytes: meter.bytes, digest: meter.digest(), files: out.sums() };
}

/** Throws when a stream did not arrive as it was sent. */
export function assertSameHash(what: string, sent: string, received: string): void {
  if (sent !== received) {
    throw new TsmError('EINTEGRITY', `the ${what} arrived corrupted: ${received.slice(0, 18)}… on the peer, ${sent.slice(0, 18)}… sent`, {
      fix: 'nothing was changed; retry the move, and if it happens again check the network path and memory of both hosts',
    });
  }
}
