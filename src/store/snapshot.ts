import { lit, nullable, num, obj, str, type Validator } from '../agent/protocol/validate.js';
import { NAME } from '../agent/schema.js';
import { BYTES, CHECKPOINT_ID, checkpointInfo, HEX64, parseWith, TAG, TIME, type CheckpointInfo } from '../checkpoint/manifest-schema.js';
import { TsmError } from '../errors/errors.js';
import type { SignatureRecord } from '../sign/signature.js';
import { splitSignature, withSignature } from '../sign/trailer.js';

export type { CheckpointInfo } from '../checkpoint/manifest-schema.js';

/**
 * A checkpoint in a store: the checkpoint manifest (container config, network,
 * CRIU options, timings) without its blob files, and two streams, each an
 * uncompressed tar split into chunks: the CRIU images and the upper layer.
 * Encoded inside one object (encrypted with the store) as
 *   body:    u32 BE length | JSON | the criu stream's chunk ids | the upper stream's (32 bytes each)
 *   trailer: signature JSON | u32 BE its length | "TSMSIG01"
 * The signature (sign/signature.ts, purpose "checkpoint") is over the body's
 * exact bytes: the metadata and every chunk id. A snapshot of an older
 * tsmigrate has no trailer (unsigned).
 */
export const SNAPSHOT_FORMAT = 'tsmigrate-snapshot/1';
export const STREAMS = ['criu', 'upper'] as const;
export type StreamName = (typeof STREAMS)[number];
const MAX_CHUNKS = 1 << 26;

export interface StreamRef {
  /** tar bytes */
  bytes: number;
  sha256: string;
  chunks: number;
}

export interface SnapshotMeta {
  format: typeof SNAPSHOT_FORMAT;
  id: string;
  container: string;
  createdAt: string;
  tag: string | null;
  /** the schedule that took it, if any */
  schedule: string | null;
  /** the container's migration epoch when it was taken */
  epoch: number;
  checkpoint: CheckpointInfo;
  streams: Record<StreamName, StreamRef>;
}

export interface Snapshot {
  meta: SnapshotMeta;
  ids: Record<StreamName, Buffer>;
  /** the exact bytes signed (snapshotBody) */
  body: Buffer;
  signature: SignatureRecord | null;
}

const streamRef = obj<StreamRef>({ bytes: BYTES, sha256: HEX64, chunks: num({ int: true, min: 0, max: MAX_CHUNKS }) });

/** The snapshot's metadata: the shared checkpoint schema (manifest-schema.ts) under `checkpoint`. */
export const snapshotMeta: Validator<SnapshotMeta> = (v, path = 'manifest') => {
  const m = obj<SnapshotMeta>({
    format: lit(SNAPSHOT_FORMAT),
    id: CHECKPOINT_ID,
    container: NAME,
    createdAt: TIME,
    tag: nullable(TAG),
    // "schedule:<container>" (schedule/run.ts scheduleTag)
    schedule: nullable(str({ max: 73, pattern: /^schedule:[a-z0-9][a-z0-9_.-]{0,62}$/ })),
    epoch: num({ int: true, min: 0, max: Number.MAX_SAFE_INTEGER }),
    checkpoint: checkpointInfo,
    streams: obj<SnapshotMeta['streams']>({ criu: streamRef, upper: streamRef }),
  })(v, path);
  if (m.checkpoint.id !== m.id || m.checkpoint.container.name !== m.container) {
    throw new TsmError('EPROTO', `bad message: ${path}: the checkpoint's id or container differs from the snapshot's`, { fix: 'use another checkpoint' });
  }
  return m;
};

/** The bytes a snapshot's signature covers: its metadata and every chunk id. */
export function snapshotBody(meta: SnapshotMeta, ids: Record<StreamName, Buffer>): Buffer {
  const json = Buffer.from(JSON.stringify(meta));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([len, json, ids.criu, ids.upper]);
}

/** What a writer commits: the body is made here unless given (then it is what was signed). */
export type NewSnapshot = Pick<Snapshot, 'meta' | 'ids'> & Partial<Pick<Snapshot, 'body' | 'signature'>>;

export function encodeSnapshot(s: NewSnapshot): Buffer {
  return withSignature(s.body ?? snapshotBody(s.meta, s.ids), s.signature);
}

const bad = (what: string) => new TsmError('EINTEGRITY', `checkpoint metadata is invalid: ${what}`, { fix: 'use another checkpoint' });

/** Split off the signature trailer, then parse the body strictly. The signature itself is checked by the caller (Signing.verify). */
export function decodeSnapshot(plain: Buffer, expectId: string): Snapshot {
  const { body, signature } = splitSignature(plain, bad);
  if (body.length < 4) throw bad('truncated');
  const n = body.readUInt32BE(0);
  if (4 + n > body.length) throw bad('truncated JSON');
  const meta = parseWith(snapshotMeta, body.subarray(4, 4 + n), 'EINTEGRITY', 'checkpoint metadata', 'use another checkpoint');
  if (meta.id !== expectId) throw bad(`id ${JSON.stringify(meta.id)} where ${expectId} was expected`);
  let off = 4 + n;
  const ids = {} as Record<StreamName, Buffer>;
  for (const s of STREAMS) {
    const len = meta.streams[s].chunks * 32;
    if (off + len > body.length) throw bad(`stream ${s} lists ${meta.streams[s].chunks} chunks, fewer are stored`);
    ids[s] = body.subarray(off, off + len);
    off += len;
  }
  if (off !== body.length) throw bad('trailing bytes');
  return { meta, ids, body, signature: signature as SignatureRecord | null };
}
