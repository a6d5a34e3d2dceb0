/**
 * Memory images streamed while CRIU writes them, so the transfer overlaps the
 * dump. A record stream (a tar needs every size up front):
 *
 *   'D' | name length u8 | name | offset u64 BE | length u32 BE | bytes     data of one file
 *   'M' | count u32 BE | count × (name length u8 | name | size u64 BE)      the manifest: every file and its final size
 *   'E' | (as 'M')                                                          the end: the same list again
 *
 * While CRIU runs only `pages-*.img` files are followed (CRIU appends to them
 * and never rewrites: page data is spliced in order). Once it has exited, every
 * other image goes whole, then the manifest, then the rest of the pages: a
 * peer can start `criu restore --stream` at the manifest and feed it the pages
 * as they arrive (stream-serve.ts). The receiver accepts only plain names, only
 * appends (each record must start where the file ends), and checks at the end
 * that it holds exactly the files and sizes listed. The manifest is optional
 * (the records of stream-capture.ts have none); where it came, the end record
 * must list the same files and sizes.
 */
import fsSync, { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import zlib from 'node:zlib';
import { TsmError } from '../errors/errors.js';
import { crcHex, type ImageSum } from './image-sums.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const LIVE = /^pages-\d+\.img$/;
/** a pages image this large takes the preallocated pool file (its first bytes copied over) */
const POOL_AT = 16 << 20;
const READ = 1 << 20;
const MAX_RECORD = 4 << 20;
const MAX_FILES = 100_000;

const proto = (what: string) => new TsmError('EPROTO', `bad image stream: ${what}`, { fix: 'install the same tsmigrate version on both hosts and retry' });

/**
 * A 'D' record (header and data in one Buffer) of up to `max` bytes of data
 * (at most READ), which `read` fills. Sized to what the file holds: a Buffer
 * allocated for nothing still counts against V8's external memory, and every
 * 64 MiB of that starts a full garbage collection.
 */
async function record(name: string, off: number, max: number, read: (buf: Buffer, at: number, max: number) => Promise<number>): Promise<Buffer | undefined> {
  const want = Math.min(max, READ);
  if (want <= 0) return undefined;
  const n = Buffer.from(name);
  const hlen = 14 + n.length;
  const buf = Buffer.allocUnsafe(hlen + want);
  const got = await read(buf, hlen, want);
  if (got === 0) return undefined;
  buf.write('D', 0, 'latin1');
  buf[1] = n.length;
  n.copy(buf, 2);
  buf.writeBigUInt64BE(BigInt(off), 2 + n.length);
  buf.writeUInt32BE(got, 10 + n.length);
  return buf.subarray(0, hlen + got);
}

/** An 'M' or 'E' record: every file and its size. */
function fileList(kind: 'M' | 'E', files: ReadonlyMap<string, number>): Buffer {
  const head = Buffer.alloc(5);
  head.write(kind, 0, 'latin1');
  head.writeUInt32BE(files.size, 1);
  const parts = [head];
  for (const [name, size] of files) {
    const n = Buffer.from(name);
    const e = Buffer.alloc(1 + n.length + 8);
    e[0] = n.length;
    n.copy(e, 1);
    e.writeBigUInt64BE(BigInt(size), 1 + n.length);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

/**
 * The records of `dir` while `dumped` is pending (following pages-*.img), then
 * of everything, then the end record. A failed dump fails the stream.
 */
export function liveImageStream(dir: string, dumped: Promise<unknown>, o: { pollMs?: number; signal?: AbortSignal } = {}): Readable {
  const sent = new Map<string, number>();
  let done = false;
  let failed: unknown;
  dumped.then(() => (done = true), (e: unknown) => ((failed = e), (done = true)));
  async function* records(): AsyncGenerator<Buffer> {
    const handles = new Map<string, FileHandle>();
    try {
      const drain = async function* (name: string, all: boolean): AsyncGenerator<Buffer> {
        let fh = handles.get(name);
        if (!fh) {
          fh = await fs.open(path.join(dir, name), 'r');
          handles.set(name, fh);
        }
        const file = fh;
        // what the file holds now (CRIU only appends); read to its end, not beyond
        const size = (await file.stat()).size;
        // while CRIU runs (not `all`): back to the caller as soon as it has exited, so that the
        // manifest goes next and not after the pages written meanwhile
        while (all || !done) {
          const off = sent.get(name) ?? 0;
          // header and data in one Buffer: two would be joined (copied) further down the stream
          const rec = await record(name, off, size - off, async (buf, at, max) => (await file.read(buf, at, max, off)).bytesRead);
          if (!rec) return;
          const bytesRead = rec.length - (14 + Buffer.byteLength(name));
          sent.set(name, off + bytesRead);
          yield rec;
        }
      };
      while (!done) {
        o.signal?.throwIfAborted();
        let moved = false;
        for (const name of (await fs.readdir(dir)).filter((n) => LIVE.test(n)).sort()) {
          for await (const r of drain(name, false)) {
            moved = true;
            yield r;
          }
        }
        if (!moved && !done) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([new Promise((r) => (timer = setTimeout(r, o.pollMs ?? 3))), dumped.catch(() => undefined)]);
          clearTimeout(timer);
        }
      }
      if (failed) throw failed;
      // CRIU has exited: the sizes are final
      const sizes = new Map<string, number>();
      for (const name of (await fs.readdir(dir)).sort()) {
        if (!NAME.test(name)) throw new TsmError('EIO', `unexpected image file name ${JSON.stringify(name)} in ${dir}`, { fix: 'report a tsmigrate bug' });
        const st = await fs.stat(path.join(dir, name));
        if (st.isFile()) sizes.set(name, st.size);
      }
      const [live, rest] = [...sizes.keys()].reduce<[string[], string[]]>((acc, n) => (acc[LIVE.test(n) ? 0 : 1].push(n), acc), [[], []]);
      for (const name of rest) {
        yield* drain(name, true);
        if (!sent.has(name)) sent.set(name, 0);
      }
      yield fileList('M', sizes);
      for (const name of live) {
        yield* drain(name, true);
        if (!sent.has(name)) sent.set(name, 0);
      }
      yield fileList('E', sent);
    } finally {
      for (const fh of handles.values()) await fh.close().catch(() => undefined);
    }
  }
  return Readable.from(records(), { objectMode: false });
}

export interface LiveImageWriterOptions {
  /** told of every n bytes of record bodies about to be written */
  beforeWrite?: (n: number) => void;
  /**
   * A preallocated file on the same filesystem as dir (fallocate: its pages
   * exist before the freeze). The first pages image to grow past 16 MiB takes
   * it over (renamed into place, its first bytes copied in), or at the
   * manifest the largest one of at least 16 MiB: writing into allocated tmpfs
   * pages costs half of allocating them as the write goes. Truncated to the
   * image's size at the end.
   */
  pool?: string;
  /**
   * Told of the manifest when it arrives: every file and its final size (the
   * files other than pages-*.img are whole by then). No pool is taken after it.
   */
  onManifest?: (files: ReadonlyArray<readonly [string, number]>) => void;
  /** told of a file's size after each write of it */
  onWritten?: (name: string, size: number) => void;
  /** dir exists already (made empty by the caller, e.g. for a streamer's socket); default: it is created */
  dirExists?: boolean;
}

type ImageFile = { fd: number; size: number; name: string; pooled?: boolean; crc: number };

/**
 * Write a record stream into `dir` (created; must not exist, unless dirExists). Throws on anything
 * but a well-formed, complete stream. Record bodies go to their files piece by
 * piece as they arrive (no joining, no copies); only headers and the end record
 * are gathered. Writes are synchronous: the staging is tmpfs or page cache, and
 * a write there costs less than a trip through the thread pool.
 */
export class LiveImageWriter extends Writable {
  /** bytes of a header or end record being gathered */
  private head: Buffer[] = [];
  private headLen = 0;
  /** the record body being written: its file and the bytes still to come */
  private body: { f: ImageFile; left: number } | undefined;
  private readonly files = new Map<string, ImageFile>();
  private ended = false;
  private dirMade = false;
  private readonly beforeWrite: ((n: number) => void) | undefined;
  private pool: string | undefined;
  private manifest: Map<string, bigint> | undefined;
  private arrived: ImageSum[] | undefined;
  constructor(private readonly dir: string, private readonly o: LiveImageWriterOptions = {}) {
    super();
    this.beforeWrite = o.beforeWrite;
    this.pool = o.pool;
    this.dirMade = Boolean(o.dirExists);
  }
  /** every file and the sum of its bytes as they arrived; once the end record has been taken */
  sums(): ImageSum[] {
    if (!this.arrived) throw proto('the stream ended before its end record');
    return this.arrived;
  }
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      this.consume(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
  override _final(cb: (e?: Error | null) => void): void {
    if (!this.ended || this.headLen) return cb(proto(this.ended ? 'bytes after the end record' : 'the stream ended before its end record'));
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.closeAll();
    cb(err);
  }

  private closeAll(): void {
    for (const f of this.files.values()) {
      try {
        fsSync.closeSync(f.fd);
      } catch {
        /* closed */
      }
    }
    this.files.clear();
  }

  private open(name: string): ImageFile {
    if (this.files.size >= MAX_FILES) throw proto('too many files');
    if (this.manifest && !this.manifest.has(name)) throw proto(`${name} is not in the manifest`);
    this.ensureDir();
    const f: ImageFile = { fd: fsSync.openSync(path.join(this.dir, name), 'wx+', 0o600), size: 0, name, crc: 0 };
    this.files.set(name, f);
    return f;
  }

  /** The pool file takes over `f`: what f holds is copied in, then the pool is renamed over it. */
  private adoptPool(f: ImageFile): void {
    const pool = this.pool!;
    this.pool = undefined; // once, whatever happens
    let pfd: number;
    try {
      pfd = fsSync.openSync(pool, 'r+');
    } catch {
      return; // gone (given back): f stays as it is
    }
    try {
      const buf = Buffer.allocUnsafe(Math.min(f.size, 1 << 20));
      for (let off = 0; off < f.size; ) {
        const n = fsSync.readSync(f.fd, buf, 0, Math.min(buf.length, f.size - off), off);
        if (n <= 0) throw new Error(`short read of ${f.name}`);
        for (let done = 0; done < n; ) done += fsSync.writeSync(pfd, buf, done, n - done, off + done);
        off += n;
      }
      fsSync.renameSync(pool, path.join(this.dir, f.name));
    } catch (e) {
      fsSync.closeSync(pfd);
      throw e;
    }
    fsSync.closeSync(f.fd);
    f.fd = pfd;
    f.pooled = true;
  }

  /** the gathered head, joined, if at least n bytes have arrived */
  private peek(n: number): Buffer | undefined {
    if (this.headLen < n) return undefined;
    if (this.head.length > 1) this.head = [Buffer.concat(this.head)];
    return this.head[0]!;
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.ended) throw proto('bytes after the end record');
      if (this.body) {
        const n = Math.min(this.body.left, chunk.length - at);
        const f = this.body.f;
        if (!f.pooled) this.beforeWrite?.(n);
        f.crc = zlib.crc32(chunk.subarray(at, at + n), f.crc);
        for (let done = 0; done < n; ) done += fsSync.writeSync(f.fd, chunk, at + done, n - done, f.size + done);
        f.size += n;
        if (this.pool && !f.pooled && f.size >= POOL_AT && LIVE.test(f.name)) this.adoptPool(f);
        this.o.onWritten?.(f.name, f.size);
        this.body.left -= n;
        at += n;
        if (this.body.left === 0) this.body = undefined;
        continue;
      }
      // gather a header (or the end record) byte by byte until it is complete
      this.head.push(chunk.subarray(at));
      this.headLen += chunk.length - at;
      const used = this.parseHead();
      if (used === undefined) return; // all of it is in head, waiting for more
      // the head held `used` bytes of records: what follows in this chunk is consumed next
      const consumedFromChunk = used - (this.headLen - (chunk.length - at));
      this.head = [];
      this.headLen = 0;
      at += consumedFromChunk;
    }
  }

  /** Parse one header or the end record from head; the bytes it used, or undefined if incomplete. */
  private parseHead(): number | undefined {
    const b = this.peek(2);
    if (!b) return undefined;
    const kind = String.fromCharCode(b[0]!);
    if (kind === 'D') {
      const n = b[1]!;
      const h = this.peek(2 + n + 12);
      if (!h) return undefined;
      const name = h.subarray(2, 2 + n).toString('latin1');
      if (!NAME.test(name)) throw proto(`file name ${JSON.stringify(name)}`);
      const off = h.readBigUInt64BE(2 + n);
      const len = h.readUInt32BE(10 + n);
      if (len > MAX_RECORD) throw proto(`a record of ${len} bytes`);
      const f = this.files.get(name) ?? this.open(name);
      if (off !== BigInt(f.size)) throw proto(`${name}: data at ${off}, the file ends at ${f.size}`);
      if (len > 0) this.body = { f, left: len };
      return 14 + n;
    }
    if (kind === 'M' || kind === 'E') {
      const list = this.parseList();
      if (!list) return undefined;
      if (kind === 'M') this.takeManifest(list.files);
      else this.takeEnd(list.files);
      return list.used;
    }
    throw proto(`record type 0x${b[0]!.toString(16)}`);
  }

  /** An 'M' or 'E' record's list of files and sizes, and the bytes it used; undefined if incomplete. */
  private parseList(): { files: Map<string, bigint>; used: number } | undefined {
    const h5 = this.peek(5);
    if (!h5) return undefined;
    const count = h5.readUInt32BE(1);
    if (count > MAX_FILES) throw proto(`${count} files`);
    let at = 5;
    const files = new Map<string, bigint>();
    for (let i = 0; i < count; i++) {
      const h = this.peek(at + 1);
      if (!h) return undefined;
      const n = h[at]!;
      const e = this.peek(at + 1 + n + 8);
      if (!e) return undefined;
      const name = e.subarray(at + 1, at + 1 + n).toString('latin1');
      if (!NAME.test(name)) throw proto(`file name ${JSON.stringify(name)}`);
      files.set(name, e.readBigUInt64BE(at + 1 + n));
      at += 1 + n + 8;
    }
    return { files, used: at };
  }

  private takeManifest(listed: Map<string, bigint>): void {
    if (this.manifest) throw proto('a second manifest');
    for (const f of this.files.values()) {
      const size = listed.get(f.name);
      if (size === undefined || BigInt(f.size) > size) throw proto(`${f.name}: ${f.size} bytes arrived, the manifest says ${size ?? 'none'}`);
    }
    this.manifest = listed;
    this.ensureDir();
    // the pool goes to the largest pages image now, by its final size: after the manifest a
    // reader may have a file open, and a file renamed under it would leave the reader behind
    if (this.pool) {
      const [largest, size] = [...listed].filter(([n]) => LIVE.test(n)).reduce<[string, bigint]>((a, b) => (b[1] > a[1] ? b : a), ['', 0n]);
      if (largest && size >= BigInt(POOL_AT)) this.adoptPool(this.files.get(largest) ?? this.open(largest));
      this.pool = undefined;
    }
    this.o.onManifest?.([...listed].map(([name, size]) => [name, Number(size)] as const));
    for (const f of this.files.values()) this.o.onWritten?.(f.name, f.size);
  }

  private takeEnd(listed: Map<string, bigint>): void {
    if (this.manifest && (listed.size !== this.manifest.size || [...listed].some(([n, s]) => this.manifest!.get(n) !== s))) {
      throw proto('the end record differs from the manifest');
    }
    for (const [name, size] of listed) {
      const f = this.files.get(name) ?? (size === 0n ? this.open(name) : undefined);
      if (!f || BigInt(f.size) !== size) throw proto(`${name}: ${f?.size ?? 'no'} bytes arrived, ${size} were sent`);
    }
    for (const name of this.files.keys()) if (!listed.has(name)) throw proto(`${name} is not in the end record`);
    // the pool's allocation beyond what was written goes back
    for (const f of this.files.values()) if (f.pooled) fsSync.ftruncateSync(f.fd, f.size);
    this.arrived = [...this.files.values()].map((f) => ({ name: f.name, size: f.size, crc32: crcHex(f.crc) }));
    this.ensureDir();
    this.closeAll();
    this.ended = true;
  }

  private ensureDir(): void {
    if (!this.dirMade) {
      fsSync.mkdirSync(this.dir, { mode: 0o700 });
      this.dirMade = true;
    }
  }
}
