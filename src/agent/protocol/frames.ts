/**
 * Framing over a byte Duplex (an SSH exec channel, a socket, stdio).
 *
 *   u32 BE payload length | u8 kind | u32 BE stream id | payload
 *
 * kinds: JSON (a message; stream 0), DATA (bytes of stream N), END (stream N
 * finished; empty payload), ABORT (stream N failed; payload = JSON error).
 * Lengths are bounded per kind: a larger declared length is a protocol error.
 */
import { Transform, type TransformCallback, type Writable } from 'node:stream';
import { TsmError } from '../../errors/errors.js';

export const FrameKind = { JSON: 1, DATA: 2, END: 3, ABORT: 4 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_NAMES: Record<number, string> = { 1: 'JSON', 2: 'DATA', 3: 'END', 4: 'ABORT' };

export const HEADER_BYTES = 9;
export const MAX_DATA_PAYLOAD = 1024 * 1024;
export const MAX_JSON_PAYLOAD = 8 * 1024 * 1024; // room for 100,000 deleted paths in a putUpper delta
export const MAX_STREAM_ID = 0xffff_ffff;

export interface Frame {
  kind: FrameKind;
  /** 0 for JSON frames, 1..2^32-1 for stream frames */
  stream: number;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);
const PROTO_FIX = 'install the same tsmigrate version on both hosts; if it still happens, the connection corrupts data';
const FIRST_FIX = 'make sure nothing on the peer writes to stdout before tsmigrate starts (e.g. ~/.bashrc output), and install the same tsmigrate version on both hosts';

export function protocolError(message: string, fix = PROTO_FIX): TsmError {
  return new TsmError('EPROTO', `protocol error: ${message}`, { fix });
}

/** The largest payload a frame of `kind` may carry. */
export function maxPayload(kind: number): number {
  return kind === FrameKind.DATA ? MAX_DATA_PAYLOAD : kind === FrameKind.END ? 0 : MAX_JSON_PAYLOAD;
}

/** Why a header is not acceptable, or undefined when it is. */
export function checkHeader(length: number, kind: number, stream: number): string | undefined {
  const name = KIND_NAMES[kind];
  if (name === undefined) return `frame of unknown kind ${kind}`;
  if (length > maxPayload(kind)) return `a ${name} frame declares ${length} bytes, more than the ${maxPayload(kind)} allowed`;
  if (kind === FrameKind.JSON && stream !== 0) return `a JSON frame on stream ${stream} (must be 0)`;
  if (kind !== FrameKind.JSON && stream === 0) return `a ${name} frame on stream 0`;
  return undefined;
}

export function encodeHeader(kind: FrameKind, stream: number, length: number): Buffer {
  const problem = checkHeader(length, kind, stream);
  if (problem) throw protocolError(`refusing to send ${problem}`);
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  h.writeUInt8(kind, 4);
  h.writeUInt32BE(stream, 5);
  return h;
}

/** One frame as one Buffer (copies the payload; FrameWriter avoids the copy). */
export function encodeFrame(kind: FrameKind, stream: number, payload: Buffer = EMPTY): Buffer {
  return Buffer.concat([encodeHeader(kind, stream, payload.length), payload]);
}

/** A JSON payload; throws EPROTO when it is larger than a JSON frame may be. */
export function jsonPayload(value: unknown, what = 'message'): Buffer {
  const buf = Buffer.from(JSON.stringify(value), 'utf8');
  if (buf.length > MAX_JSON_PAYLOAD) {
    throw new TsmError('EPROTO', `the ${what} is ${Math.ceil(buf.length / 1024)} KiB as JSON, more than the ${MAX_JSON_PAYLOAD / 1024} KiB a message may carry`, {
      fix: 'send less in one message (e.g. fewer paths); large data belongs in a stream',
    });
  }
  return buf;
}

export function parseJsonPayload(payload: Buffer): unknown {
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch {
    throw protocolError(`a JSON frame of ${payload.length} bytes is not valid JSON`);
  }
}

/**
 * Bytes in, Frame objects out. Handles any chunking. A DATA frame's payload is
 * passed on in pieces as its bytes arrive (slices of the input, never copied:
 * bulk data makes no garbage here); its header is checked before any piece.
 * JSON and ABORT payloads are passed on whole. Holds at most one partial
 * non-DATA frame plus the chunk being parsed (`bufferedBytes`).
 */
export class FrameDecoder extends Transform {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** the frame being read; for DATA, `left` payload bytes still to come */
  private header: { length: number; kind: FrameKind; stream: number; left: number } | undefined;
  private frames = 0;

  constructor() {
    super({ readableObjectMode: true, writableObjectMode: false });
  }

  /** bytes received but not yet emitted as frames */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** complete frames read so far */
  get frameCount(): number {
    return this.frames;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      this.parse();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.buffered > 0 || this.header) cb(protocolError('the connection ended in the middle of a frame'));
    else cb();
  }

  private parse(): void {
    for (;;) {
      if (!this.header) {
        if (this.buffered < HEADER_BYTES) return;
        const h = this.takeBytes(HEADER_BYTES);
        const length = h.readUInt32BE(0);
        const kind = h.readUInt8(4);
        const stream = h.readUInt32BE(5);
        const problem = checkHeader(length, kind, stream);
        if (problem) {
          if (this.frames === 0) throw protocolError(`the peer sent bytes that are not tsmigrate frames (${problem}; first bytes ${printable(h)})`, FIRST_FIX);
          throw protocolError(problem);
        }
        this.header = { length, kind: kind as FrameKind, stream, left: length };
      }
      const { kind, stream, length } = this.header;
      if (kind === FrameKind.DATA && length > 0) {
        // pass on what has arrived, slice by slice
        while (this.header.left > 0 && this.buffered > 0) {
          const first = this.chunks[0]!;
          const n = Math.min(first.length, this.header.left);
          this.header.left -= n;
          this.push({ kind, stream, payload: this.takeBytes(n) } satisfies Frame);
        }
        if (this.header.left > 0) return;
        this.header = undefined;
        this.frames++;
        continue;
      }
      if (this.buffered < length) return;
      this.header = undefined;
      this.frames++;
      this.push({ kind, stream, payload: length === 0 ? EMPTY : this.takeBytes(length) } satisfies Frame);
    }
  }

  private takeBytes(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

function printable(b: Buffer): string {
  return JSON.stringify(b.toString('latin1').replace(/[^\x20-\x7e]/g, '.'));
}

/**
 * Writes frames to a Writable, respecting back-pressure: callers that send
 * bulk data await drained() whenever frame() returned false.
 */
export class FrameWriter {
  constructor(private readonly out: Writable, private readonly lost: () => TsmError) {}

  get usable(): boolean {
    return !this.out.destroyed && !this.out.writableEnded;
  }

  /** Header and payload, written back to back; false when the transport wants a 'drain'. */
  frame(kind: FrameKind, stream: number, payload: Buffer = EMPTY): boolean {
    if (!this.usable) throw this.lost();
    const header = encodeHeader(kind, stream, payload.length);
    const ok = this.out.write(header);
    return payload.length === 0 ? ok : this.out.write(payload);
  }

  json(value: unknown, what?: string): boolean {
    return this.frame(FrameKind.JSON, 0, jsonPayload(value, what));
  }

  /** Bulk bytes of `stream`, split into frames of at most MAX_DATA_PAYLOAD, waiting for 'drain' as needed. */
  async data(stream: number, chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; off += MAX_DATA_PAYLOAD) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + MAX_DATA_PAYLOAD));
      if (!this.frame(FrameKind.DATA, stream, piece)) await this.drained();
    }
  }

  /** Resolves once the transport can take more; rejects when it closes first. */
  drained(): Promise<void> {
    if (!this.usable) return Promise.reject(this.lost());
    if (!this.out.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: TsmError): void => {
        this.out.off('drain', onDrain);
        this.out.off('close', onClose);
        this.out.off('error', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void => done(this.lost());
      this.out.on('drain', onDrain);
      this.out.on('close', onClose);
      this.out.on('error', onClose);
    });
  }
}
