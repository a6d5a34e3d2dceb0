/**
 * Crafted archives for the extraction limits: real tar (tar-stream) and real
 * zstd (zstd-napi) streams, built in the test. Large entries are zeros made
 * as they are read, so a 1.5 GiB entry costs a second of CPU and 50 KB of
 * output, not 1.5 GiB of memory.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { CompressStream } from 'zstd-napi';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface Entry {
  name: string;
  type?: tar.Header['type'];
  linkname?: string;
  mode?: number;
  /** a body, or a count of zero bytes made as they are read */
  body?: string | Buffer | { zeros: number };
}

/** `n` zero bytes, 1 MiB at a time. */
export function zeros(n: number): Readable {
  const chunk = Buffer.alloc(Math.min(n, MiB));
  let left = n;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= c.length;
      this.push(c);
    },
  });
}

/** A tar stream of `entries` (an iterable: entries are made as the stream is read). */
export function tarOf(entries: Iterable<Entry>): Readable {
  const pack = tar.pack();
  // a reader that gives up (a refused archive) destroys the pack with its error: that is not ours to report
  pack.on('error', () => undefined);
  (async () => {
    for (const e of entries) {
      const { body, ...h } = e;
      if (body !== undefined && typeof body === 'object' && 'zeros' in body) {
        const sink = pack.entry({ ...h, size: body.zeros });
        await pipeline(zeros(body.zeros), sink as unknown as NodeJS.WritableStream);
      } else {
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry(h, body ?? '', (err) => (err ? reject(err) : resolve()));
          sink.on('error', () => undefined);
        });
      }
    }
    pack.finalize();
  })().catch((e: Error) => pack.destroy(e));
  return pack as unknown as Readable;
}

/** All of `src`, zstd-compressed (level 1), in memory. */
export async function zstdOf(src: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(src, new CompressStream({ compressionLevel: 1 }), async (s: AsyncIterable<Buffer>) => {
    for await (const c of s) out.push(c);
  });
  return Buffer.concat(out);
}

/** All of `src` in memory. */
export async function bufferOf(src: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of src) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** A Readable of `buf` that counts what was read from it (to see a sender stopped early). */
export function counted(buf: Buffer, chunk = 64 * 1024): Readable & { readBytes: () => number } {
  let at = 0;
  const r = new Readable({
    read() {
      if (at >= buf.length) return void this.push(null);
      const c = buf.subarray(at, at + chunk);
      at += c.length;
      this.push(c);
    },
  }) as Readable & { readBytes: () => number };
  r.readBytes = () => at;
  return r;
}
