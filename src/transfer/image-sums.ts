/**
 * What CRIU reads, checked against what arrived. The peer sums every image
 * file as its bytes arrive (live-images.ts LiveImageWriter; the stream they
 * came in is checked end to end against the source's digest before anything
 * is resumed). Before the tree is resumed, what CRIU consumed is compared with
 * those sums: restoring while the images arrive, the streamer sums the very
 * bytes it hands CRIU (stream-serve.ts); restoring from the files, they are
 * summed again right before `criu restore` reads them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { TsmError } from '../errors/errors.js';

/** One image: its size and the CRC-32 of its bytes (8 hex digits). */
export interface ImageSum {
  name: string;
  size: number;
  crc32: string;
}

export const crcHex = (crc: number): string => (crc >>> 0).toString(16).padStart(8, '0');

function changed(name: string, what: string): TsmError {
  return new TsmError('EINTEGRITY', `the image ${name} changed on the peer after it arrived (${what}); nothing was resumed`, {
    fix: "the move was rolled back and the container runs on the source; check the peer's memory and its staging filesystem, then retry",
  });
}

/** Throws unless every image CRIU was served matches its sum as it arrived. Pure. */
export function checkServed(served: readonly ImageSum[], arrived: readonly ImageSum[]): void {
  const want = new Map(arrived.map((s) => [s.name, s]));
  for (const s of served) {
    const w = want.get(s.name);
    if (!w) throw changed(s.name, 'it did not arrive at all');
    if (w.size !== s.size || w.crc32 !== s.crc32) throw changed(s.name, `CRIU read ${s.size} bytes with CRC-32 ${s.crc32}, ${w.size} bytes with CRC-32 ${w.crc32} arrived`);
  }
}

/** The sum of one file as it is now. */
export async function sumFile(file: string): Promise<ImageSum> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let crc = 0;
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (!bytesRead) break;
      crc = zlib.crc32(buf.subarray(0, bytesRead), crc);
      size += bytesRead;
    }
    return { name: path.basename(file), size, crc32: crcHex(crc) };
  } finally {
    await fh.close();
  }
}

/** Throws unless every image in `dir` is as it arrived. */
export async function checkAtRest(dir: string, arrived: readonly ImageSum[]): Promise<void> {
  const now: ImageSum[] = [];
  for (const s of arrived) now.push(await sumFile(path.join(dir, s.name)).catch(() => ({ name: s.name, size: -1, crc32: 'missing' })));
  for (const s of now) if (s.size < 0) throw changed(s.name, 'it is gone');
  checkServed(now, arrived);
}
