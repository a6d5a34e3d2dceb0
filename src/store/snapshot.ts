import type { CheckpointManifest } from '../checkpoint/manifest.js';
import { isCheckpointId } from '../checkpoint/manifest.js';
import { TsmError } from '../errors/errors.js';

/**
 * A checkpoint in a store: the checkpoint manifest (container config, network,
 * CRIU options, timings) without its blob files, and two streams, each an
 * uncompressed tar split into chunks: the CRIU images and the upper layer.
 * Encoded as: u32 BE length | JSON | the criu stream's chunk ids | the upper
 * stream's chunk ids (32 bytes each), inside one object (encrypted with the store).
 */
export const SNAPSHOT_FORMAT = 'tsmigrate-snapshot/1';
export const STREAMS = ['criu', 'upper'] as const;
export type StreamName = (typeof STREAMS)[number];

export interface StreamRef {
  /** tar bytes */
  bytes: number;
  sha256: string;
  chunks: number;
}

export type CheckpointInfo = Omit<CheckpointManifest, 'format' | 'blobs'>;

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
}

export function encodeSnapshot(s: Snapshot): Buffer {
  const json = Buffer.from(JSON.stringify(s.meta));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([len, json, s.ids.criu, s.ids.upper]);
}

const bad = (what: string) => new TsmError('EINTEGRITY', `checkpoint metadata is invalid: ${what}`, { fix: 'use another checkpoint' });

export function decodeSnapshot(plain: Buffer, expectId: string): Snapshot {
  if (plain.length < 4) throw bad('truncated');
  const n = plain.readUInt32BE(0);
  if (4 + n > plain.length) throw bad('truncated JSON');
  let meta: SnapshotMeta;
  try {
    meta = JSON.parse(plain.subarray(4, 4 + n).toString('utf8')) as SnapshotMeta;
  } catch {
    throw bad('not JSON');
  }
  if (meta.format !== SNAPSHOT_FORMAT) throw bad(`format ${JSON.stringify(meta.format)}`);
  if (meta.id !== expectId || !isCheckpointId(meta.id)) throw bad(`id ${JSON.stringify(meta.id)} where ${expectId} was expected`);
  if (typeof meta.container !== 'string' || typeof meta.createdAt !== 'string' || !meta.checkpoint?.container) throw bad('missing fields');
  let off = 4 + n;
  const ids = {} as Record<StreamName, Buffer>;
  for (const s of STREAMS) {
    const ref = meta.streams?.[s];
    if (!ref || !Number.isSafeInteger(ref.chunks) || ref.chunks < 0 || !/^[0-9a-f]{64}$/.test(ref.sha256)) throw bad(`stream ${s}`);
    const len = ref.chunks * 32;
    if (off + len > plain.length) throw bad(`stream ${s} lists ${ref.chunks} chunks, fewer are stored`);
    ids[s] = plain.subarray(off, off + len);
    off += len;
  }
  if (off !== plain.length) throw bad('trailing bytes');
  return { meta, ids };
}
