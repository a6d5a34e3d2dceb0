import { Transform, type TransformCallback } from 'node:stream';
import { TsmError } from '../errors/errors.js';
import { MAX_OBJECT_PLAIN } from './object.js';

/** Encode chunk objects for storePutChunks: [id 32][len u32 BE][object]. */
export function encodeRecords(objects: Array<{ id: string; obj: Buffer }>): Buffer {
  const parts: Buffer[] = [];
  for (const { id, obj } of objects) {
    const head = Buffer.alloc(36);
    Buffer.from(id, 'hex').copy(head, 0);
    head.writeUInt32BE(obj.length, 32);
    parts.push(head, obj);
  }
  return Buffer.concat(parts);
}

const MAX_OBJECT = MAX_OBJECT_PLAIN + 1024;

/** Parse storePutChunks records as they arrive (bounded: one object at most buffered). */
export class RecordParser extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  constructor() {
    super({ readableObjectMode: true });
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 36) {
      const len = this.buf.readUInt32BE(32);
      if (len > MAX_OBJECT) return cb(new TsmError('EPROTO', `a chunk record claims ${len} bytes`, { fix: 'install the same tsmigrate version on both hosts' }));
      if (this.buf.length < 36 + len) break;
      this.push({ id: this.buf.subarray(0, 32).toString('hex'), obj: Buffer.from(this.buf.subarray(36, 36 + len)) });
      this.buf = this.buf.subarray(36 + len);
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.buf.length) return cb(new TsmError('EPROTO', `the chunk stream ended inside a record (${this.buf.length} bytes left)`, { fix: 'retry' }));
    cb();
  }
}
