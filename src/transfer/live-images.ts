/**
 * Memory images streamed while CRIU writes them, so the transfer overlaps the
 * dump. A record stream (a tar needs every size up front):
 *
 *   'D' | name length u8 | name | offset u64 BE | length u32 BE | bytes     data of one file
 *   'E' | count u32 BE | count × (name length u8 | name | size u64 BE)      the end: every file and its final size
 *
 * While CRIU runs only `pages-*.img` files are followed (CRIU appends to them
 * and never rewrites: page data is spliced in order); every other image, and
 * the rest of the pages, go after CRIU has exited. The receiver accepts only
 * plain names, only appends (each record must start where the file ends), and
 * checks at the end that it holds exactly the files and sizes listed.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { TsmError } from '../errors/errors.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const LIVE = /^pages-\d+\.img$/;
const READ = 1 << 20;
const MAX_RECORD = 4 << 20;
const MAX_FILES = 100_000;

const proto = (what: string) => new TsmError('EPROTO', `bad image stream: ${what}`, { fix: 'install the same tsmigrate version on both hosts and retry' });

function header(kind: 'D' | 'E', name: string, a: bigint, b: number): Buffer {
  const n = Buffer.from(name);
  const h = Buffer.alloc(1 + 1 + n.length + 8 + 4);
  h.write(kind, 0, 'latin1');
  h[1] = n.length;
  n.copy(h, 2);
  h.writeBigUInt64BE(a, 2 + n.length);
  h.writeUInt32BE(b, 10 + n.length);
  return h;
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
        for (;;) {
          const off = sent.get(name) ?? 0;
          const buf = Buffer.allocUnsafe(READ);
          const { bytesRead } = await fh.read(buf, 0, READ, off);
          if (bytesRead === 0) return;
          sent.set(name, off + bytesRead);
          yield header('D', name, BigInt(off), bytesRead);
          yield buf.subarray(0, bytesRead);
          if (!all && bytesRead < READ) return;
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
        if (!moved && !done) await Promise.race([new Promise((r) => setTimeout(r, o.pollMs ?? 3)), dumped.catch(() => undefined)]);
      }
      if (failed) throw failed;
      const names = (await fs.readdir(dir)).sort();
      for (const name of names) {
        if (!NAME.test(name)) throw new TsmError('EIO', `unexpected image file name ${JSON.stringify(name)} in ${dir}`, { fix: 'report a tsmigrate bug' });
        const st = await fs.stat(path.join(dir, name));
        if (!st.isFile()) continue;
        yield* drain(name, true);
        if (!sent.has(name)) sent.set(name, 0);
      }
      const files = [...sent.entries()];
      const end = Buffer.alloc(5);
      end.write('E', 0, 'latin1');
      end.writeUInt32BE(files.length, 1);
      const parts = [end];
      for (const [name, size] of files) {
        const n = Buffer.from(name);
        const e = Buffer.alloc(1 + n.length + 8);
        e[0] = n.length;
        n.copy(e, 1);
        e.writeBigUInt64BE(BigInt(size), 1 + n.length);
        parts.push(e);
      }
      yield Buffer.concat(parts);
    } finally {
      for (const fh of handles.values()) await fh.close().catch(() => undefined);
    }
  }
  return Readable.from(records(), { objectMode: false });
}

/** Write a record stream into `dir` (created; must not exist). Throws on anything but a well-formed, complete stream. */
export class LiveImageWriter extends Transform {
  /** contiguous bytes being parsed, and what arrived after them (joined only when a record needs it: no quadratic copying) */
  private buf: Buffer = Buffer.alloc(0);
  private more: Buffer[] = [];
  private moreLen = 0;
  private readonly files = new Map<string, { fh: FileHandle; size: number }>();
  private ended = false;
  constructor(private readonly dir: string) {
    super();
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.more.push(chunk);
    this.moreLen += chunk.length;
    this.consume().then(() => cb(), (e: Error) => cb(e));
  }
  override _flush(cb: TransformCallback): void {
    if (!this.ended || this.buf.length || this.moreLen) return cb(proto(this.ended ? 'bytes after the end record' : 'the stream ended before its end record'));
    cb();
  }
  /** at least n contiguous bytes in buf, if they have arrived */
  private have(n: number): boolean {
    if (this.buf.length >= n) return true;
    if (this.buf.length + this.moreLen < n) return false;
    this.buf = Buffer.concat([this.buf, ...this.more]);
    this.more = [];
    this.moreLen = 0;
    return true;
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    void Promise.all([...this.files.values()].map((f) => f.fh.close().catch(() => undefined))).then(() => cb(err));
  }

  private async consume(): Promise<void> {
    for (;;) {
      if (this.ended) {
        if (this.buf.length || this.moreLen) throw proto('bytes after the end record');
        return;
      }
      if (!this.have(2)) return;
      const kind = String.fromCharCode(this.buf[0]!);
      if (kind === 'D') {
        const n = this.buf[1]!;
        if (!this.have(2 + n + 12)) return;
        const name = this.buf.subarray(2, 2 + n).toString('latin1');
        if (!NAME.test(name)) throw proto(`file name ${JSON.stringify(name)}`);
        const off = this.buf.readBigUInt64BE(2 + n);
        const len = this.buf.readUInt32BE(10 + n);
        if (len > MAX_RECORD) throw proto(`a record of ${len} bytes`);
        if (!this.have(14 + n + len)) return;
        let f = this.files.get(name);
        if (!f) {
          if (this.files.size >= MAX_FILES) throw proto('too many files');
          if (this.files.size === 0) await fs.mkdir(this.dir, { mode: 0o700 });
          f = { fh: await fs.open(path.join(this.dir, name), 'wx', 0o600), size: 0 };
          this.files.set(name, f);
        }
        if (off !== BigInt(f.size)) throw proto(`${name}: data at ${off}, the file ends at ${f.size}`);
        await f.fh.write(this.buf, 14 + n, len, f.size);
        f.size += len;
        this.buf = this.buf.subarray(14 + n + len);
      } else if (kind === 'E') {
        if (!this.have(5)) return;
        const count = this.buf.readUInt32BE(1);
        if (count > MAX_FILES) throw proto(`${count} files`);
        let at = 5;
        const listed = new Map<string, bigint>();
        for (let i = 0; i < count; i++) {
          if (!this.have(at + 1)) return;
          const n = this.buf[at]!;
          if (!this.have(at + 1 + n + 8)) return;
          const name = this.buf.subarray(at + 1, at + 1 + n).toString('latin1');
          if (!NAME.test(name)) throw proto(`file name ${JSON.stringify(name)}`);
          listed.set(name, this.buf.readBigUInt64BE(at + 1 + n));
          at += 1 + n + 8;
        }
        if (this.files.size === 0) await fs.mkdir(this.dir, { mode: 0o700 });
        for (const [name, size] of listed) {
          let f = this.files.get(name);
          if (!f && size === 0n) {
            f = { fh: await fs.open(path.join(this.dir, name), 'wx', 0o600), size: 0 };
            this.files.set(name, f);
          }
          if (!f || BigInt(f.size) !== size) throw proto(`${name}: ${f?.size ?? 'no'} bytes arrived, ${size} were sent`);
        }
        for (const name of this.files.keys()) if (!listed.has(name)) throw proto(`${name} is not in the end record`);
        for (const f of this.files.values()) await f.fh.close();
        this.files.clear();
        this.buf = this.buf.subarray(at);
        this.ended = true;
      } else {
        throw proto(`record type 0x${this.buf[0]!.toString(16)}`);
      }
    }
  }
}
