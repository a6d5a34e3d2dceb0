/**
 * Sparse files in tsmigrate archives.
 *
 * A regular file with holes is stored as an ordinary tar 'file' entry whose
 * content is only its data segments, concatenated, plus the PAX record
 *
 *     TSMIGRATE.sparse=REALSIZE[;OFFSET,LENGTH]...
 *
 * (decimal byte counts; segments in increasing offset order, not
 * overlapping, each LENGTH > 0, OFFSET+LENGTH <= REALSIZE; the LENGTHs add up
 * to the entry's size). "67108864;0,4096;33554432,4096" is a 64 MiB file with
 * two 4 KiB data islands; "1048576" is a 1 MiB file that is all hole. The
 * extractor writes each segment at its offset and ftruncate()s the file to
 * REALSIZE, so the holes come back as holes.
 *
 * Holes are found with lseek SEEK_DATA / SEEK_HOLE (native addon), so the map
 * follows the filesystem's allocation (block granularity); zero bytes inside
 * allocated blocks are stored as data.
 *
 * NB: a reader that does not know TSMIGRATE.sparse (GNU tar, bsdtar) sees the
 * data segments concatenated as the file's content.
 */
import type { FileHandle } from 'node:fs/promises';

export const SPARSE_PAX_KEY = 'TSMIGRATE.sparse';

export interface Segment {
  offset: number;
  length: number;
}

export interface SparseMap {
  /** The file's size (st_size), holes included. */
  realSize: number;
  /** Data segments, increasing offsets, not overlapping. */
  segments: Segment[];
}

/** Bytes of data (what the archive stores) in `map`. */
export function dataSize(map: SparseMap): number {
  let n = 0;
  for (const s of map.segments) n += s.length;
  return n;
}

/** The TSMIGRATE.sparse record value for `map`. */
export function encodeSparseMap(map: SparseMap): string {
  return [String(map.realSize), ...map.segments.map((s) => `${s.offset},${s.length}`)].join(';');
}

/**
 * Parse and validate a TSMIGRATE.sparse value for an entry that stores
 * `storedSize` bytes. Throws an Error saying what is wrong.
 */
export function parseSparseMap(value: string, storedSize: number): SparseMap {
  const num = (s: string | undefined, what: string): number => {
    if (s === undefined || !/^\d{1,16}$/.test(s)) throw new Error(`bad ${what} ${JSON.stringify(s ?? '')}`);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new Error(`${what} ${s} is too large`);
    return n;
  };
  const parts = value.split(';');
  const realSize = num(parts[0], 'real size');
  const segments: Segment[] = [];
  let end = 0;
  let total = 0;
  for (const p of parts.slice(1)) {
    const [o, l, extra] = p.split(',');
    if (extra !== undefined) throw new Error(`bad segment ${JSON.stringify(p)}`);
    const offset = num(o, 'segment offset');
    const length = num(l, 'segment length');
    if (length === 0) throw new Error(`empty segment at ${offset}`);
    if (offset < end) throw new Error(`segment at ${offset} overlaps or is out of order`);
    if (offset + length > realSize) throw new Error(`segment ${offset},${length} is past the real size ${realSize}`);
    end = offset + length;
    total += length;
    segments.push({ offset, length });
  }
  if (total !== storedSize) throw new Error(`segments hold ${total} bytes but the entry stores ${storedSize}`);
  return { realSize, segments };
}

export interface SeekOps {
  /** lseek SEEK_DATA: next data offset at or after `off`, null if none. */
  seekData(fd: number, off: number): number | null;
  /** lseek SEEK_HOLE: next hole offset at or after `off` (EOF counts), null if `off` >= size. */
  seekHole(fd: number, off: number): number | null;
}

/**
 * The data segments of the open file `fd` of `size` bytes (its fstat size),
 * or null if it has no hole (store it as a normal file). One SEEK_HOLE for a
 * file without holes.
 */
export function probeSparse(fd: number, size: number, ops: SeekOps): SparseMap | null {
  if (size === 0) return null;
  const firstHole = ops.seekHole(fd, 0);
  if (firstHole === null || firstHole >= size) return null;
  const segments: Segment[] = [];
  let off = 0;
  while (off < size) {
    const d = ops.seekData(fd, off);
    if (d === null || d >= size) break;
    let h = ops.seekHole(fd, d);
    if (h === null || h > size) h = size;
    if (h <= d) break; // cannot happen; never loop forever
    const last = segments[segments.length - 1];
    if (last !== undefined && last.offset + last.length === d) last.length += h - d;
    else segments.push({ offset: d, length: h - d });
    off = h;
  }
  return { realSize: size, segments };
}

/**
 * Read `segments` of `fh` as a stream of fresh buffers (each chunk is a new
 * allocation: tar-stream keeps references to what it is given). Throws if the
 * file ends early (it shrank while being read); never reads past a segment.
 */
export async function* readSegments(
  fh: FileHandle,
  segments: readonly Segment[],
  opts: { chunkSize?: number; signal?: AbortSignal; what?: string; padShrunk?: boolean } = {},
): AsyncGenerator<Buffer> {
  const chunk = opts.chunkSize ?? 1 << 20;
  for (const seg of segments) {
    let pos = seg.offset;
    const end = seg.offset + seg.length;
    while (pos < end) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const want = Math.min(chunk, end - pos);
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
        if (bytesRead === 0) {
          if (!opts.padShrunk) throw new Error(`${opts.what ?? 'file'} shrank while being read (EOF at ${pos + got}, expected ${end} bytes)`);
          buf.fill(0, got); // a live tree: the entry keeps its declared size, a later delta resends the file
          got = want;
          break;
        }
        got += bytesRead;
      }
      pos += want;
      yield buf;
    }
  }
}

/**
 * Write an entry's stored content (`data`) into the freshly created, empty
 * file `fh`: with a map, each segment at its offset and then ftruncate to the
 * real size (holes stay holes); without, sequentially. Returns the number of
 * content bytes written. Throws if `data` does not match the map.
 */
/** The part of a FileHandle writeContent uses (a raw fd can be wrapped: beneath.ts fdSink). */
export interface ContentSink {
  write(buf: Buffer, off: number, len: number, pos: number): Promise<{ bytesWritten: number }>;
  truncate(len: number): Promise<void>;
}

export async function writeContent(
  fh: ContentSink,
  map: SparseMap | null,
  data: AsyncIterator<Buffer>,
  signal?: AbortSignal,
): Promise<number> {
  let seg = 0;
  let segUsed = 0;
  let total = 0;
  let pos = 0;
  for (;;) {
    const r = await data.next();
    if (r.done) break;
    const chunk = r.value;
    let off = 0;
    while (off < chunk.length) {
      let n = chunk.length - off;
      if (map !== null) {
        const s = map.segments[seg];
        if (s === undefined) throw new Error('the entry has more data than its sparse map describes');
        n = Math.min(n, s.length - segUsed);
        pos = s.offset + segUsed;
      }
      const { bytesWritten } = await fh.write(chunk, off, n, pos);
      off += bytesWritten;
      total += bytesWritten;
      pos += bytesWritten;
      if (map !== null) {
        segUsed += bytesWritten;
        if (segUsed === map.segments[seg]!.length) {
          seg++;
          segUsed = 0;
        }
      }
    }
    if (signal?.aborted) throw signal.reason;
  }
  if (map !== null) {
    if (seg !== map.segments.length) throw new Error('the entry has less data than its sparse map describes');
    await fh.truncate(map.realSize);
  }
  return total;
}
