import { createHash, createHmac } from 'node:crypto';

/**
 * Content-defined chunking (FastCDC with normalised chunking, 32-bit gear hash):
 * cut points depend on the bytes, not on offsets, so an insertion moves only
 * the chunks around it and successive checkpoints share the chunks that did
 * not change. Sizes: min 8 KiB, average ~32 KiB, max 128 KiB.
 */
export const MIN_CHUNK = 8 << 10;
export const AVG_CHUNK = 32 << 10;
export const MAX_CHUNK = 128 << 10;
// more one-bits below the average (harder to cut), fewer above (easier)
const MASK_S = 0xdb76db00 | 0; // 17 bits set, spread over bits 8..31 (the high bits see the whole 32-byte window)
const MASK_L = 0xaab55500 | 0; // 13 bits set

export type GearTable = Uint32Array;

/**
 * The gear table: fixed for unencrypted stores (a constant seed, so every host
 * and version cuts the same data the same way), from the store's key for
 * encrypted ones (chunk lengths then say nothing about the content to whoever
 * lacks the key, and two stores cut the same data differently).
 */
export function gearTable(gearKey: Buffer | null): GearTable {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    const h = gearKey ? createHmac('sha256', gearKey) : createHash('sha256');
    t[i] = h.update(`tsmigrate-gear-${i}`).digest().readUInt32LE(0);
  }
  return t;
}

const GEAR = gearTable(null);

/** Where the first chunk of `buf` ends (buf holds all remaining data when `final`). 0: need more data. */
export function cutPoint(buf: Buffer, final: boolean, gear: GearTable = GEAR): number {
  const n = buf.length;
  if (n <= MIN_CHUNK) return final ? n : 0;
  const end = Math.min(n, MAX_CHUNK);
  const normal = Math.min(end, AVG_CHUNK);
  let h = 0;
  let i = MIN_CHUNK;
  for (; i < normal; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & MASK_S) === 0) return i + 1;
  }
  for (; i < end; i++) {
    h = ((h << 1) + gear[buf[i]!]!) | 0;
    if ((h & MASK_L) === 0) return i + 1;
  }
  if (end === MAX_CHUNK) return MAX_CHUNK;
  return final ? n : 0;
}

/** Split an async stream of buffers into content-defined chunks. */
export async function* chunkStream(src: AsyncIterable<Buffer>, gear: GearTable = GEAR): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let size = 0;
  for await (const b of src) {
    pending.push(b);
    size += b.length;
    if (size < MAX_CHUNK) continue;
    let buf = Buffer.concat(pending, size);
    for (;;) {
      if (buf.length < MAX_CHUNK) break;
      const cut = cutPoint(buf, false, gear);
      yield buf.subarray(0, cut);
      buf = buf.subarray(cut);
    }
    pending = [buf];
    size = buf.length;
  }
  let buf = Buffer.concat(pending, size);
  while (buf.length > 0) {
    const cut = cutPoint(buf, true, gear);
    yield buf.subarray(0, cut);
    buf = buf.subarray(cut);
  }
}
