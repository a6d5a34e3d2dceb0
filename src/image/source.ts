/** Opening an image source tarball: compression is sniffed from magic bytes, not the file name. */
import { createReadStream, promises as fs } from 'node:fs';
import type { Duplex, Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { inflateZstd, ratioGuard } from '../archive/inflate.js';
import { PRESETS } from '../archive/limits.js';
import { TsmError } from '../errors/errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

/** What the first bytes of a file say it is. */
export type Sniffed = Compression | 'xz' | 'bzip2' | 'unknown';

export function sniffBytes(head: Uint8Array): Sniffed {
  const b = (i: number): number => head[i] ?? -1;
  if (b(0) === 0x1f && b(1) === 0x8b) return 'gzip';
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'zstd';
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) return 'xz';
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return 'bzip2';
  // ustar ("ustar\0" POSIX, "ustar  \0" GNU) at offset 257.
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'none';
  // An empty archive is just zero blocks.
  if (head.length >= 512 && head.subarray(0, 512).every((x) => x === 0)) return 'none';
  return 'unknown';
}

export async function sniffFile(file: string): Promise<Sniffed> {
  const fh = await fs.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return sniffBytes(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** Pipe `src` into `t`, forwarding errors both ways, and return `t`'s readable side. */
function chain(src: Readable, t: Transform | Duplex): Readable {
  src.on('error', (e) => t.destroy(e));
  t.on('close', () => src.destroy());
  src.pipe(t);
  return t;
}

/** A readable stream of the uncompressed tar bytes of `file`. */
export async function openTarFile(file: string): Promise<{ stream: Readable; compression: Compression }> {
  const kind = await sniffFile(file);
  switch (kind) {
    case 'none':
      return { stream: createReadStream(file), compression: 'none' };
    case 'gzip': {
      const { count, guard } = ratioGuard(PRESETS.rootfs.inflate, `the image ${file}`);
      return { stream: chain(chain(chain(createReadStream(file), count), createGunzip()), guard), compression: 'gzip' };
    }
    case 'zstd':
      return { stream: chain(createReadStream(file), inflateZstd(PRESETS.rootfs.inflate, `the image ${file}`)), compression: 'zstd' };
    case 'xz':
    case 'bzip2':
      throw new TsmError('EINVAL_ARG', `${file} is ${kind}-compressed, which is not supported`, {
        fix: `decompress it first (${kind === 'xz' ? 'xz' : 'bzip2'} -dk ${file}) or use a plain, gzip or zstd tar`,
      });
    default:
      throw new TsmError('EINVAL_ARG', `${file} is not a tar archive (plain, gzip or zstd)`, {
        fix: 'give a rootfs directory or a tar file, e.g. from docker export',
      });
  }
}
