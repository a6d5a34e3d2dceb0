import type { ContainerConfig } from '../container/types.js';
import { lit, obj, type Validator } from '../agent/protocol/validate.js';
import { TsmError } from '../errors/errors.js';
import { archiveBlobs, checkpointInfo, parseWith } from './manifest-schema.js';
import type { NetworkPlan } from '../network/setup.js';

/** See docs/FORMAT.md. */
export const CHECKPOINT_FORMAT = 'tsmigrate-checkpoint/1';
export const BLOB_NAMES = ['criu', 'upper'] as const;
export type BlobName = (typeof BLOB_NAMES)[number];

export interface BlobInfo {
  file: string;
  sha256: string;
  size: number;
  compression: 'zstd' | 'none';
  entries?: number;
  /** the uncompressed tar's bytes: what a restore lets the blob expand to (archive/limits.ts) */
  tarBytes?: number;
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  id: string;
  tag: string | null;
  createdAt: string;
  container: ContainerConfig;
  image: { name: string; digest: string };
  network: NetworkPlan | null;
  /** pipe:[inode] keys of the init's stdout and stderr at dump time (for --inherit-fd) */
  stdio: { stdout: string; stderr: string };
  criu: { version: string; options: { tcpEstablished: boolean; fileLocks: boolean; leaveRunning: boolean } };
  host: { kernel: string; arch: string; hostname: string };
  /** milliseconds: how long the container was frozen, and the parts */
  timings: { frozenMs: number; dumpMs: number; snapshotMs: number; packMs: number; totalMs: number };
  /** the CRIU images, the upper layer, and (when listed) CRIU's dump log */
  blobs: Record<BlobName, BlobInfo> & { log?: BlobInfo };
}

const ID = /^[a-z0-9][a-z0-9_.-]{0,127}$/;

/** A checkpoint's --tag: 1-64 characters [A-Za-z0-9_.:-]; throws one clear error otherwise. */
export function validateTag(tag: string | undefined): void {
  if (tag !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(tag)) {
    throw new TsmError('EINVAL_ARG', `invalid --tag ${JSON.stringify(tag)}`, { fix: 'use 1-64 characters [A-Za-z0-9_.:-]' });
  }
}

export function isCheckpointId(s: string): boolean {
  return ID.test(s);
}

export function checkpointId(name: string, now: Date, rand: string): string {
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'z').toLowerCase();
  return `${name}-${ts}-${rand}`;
}

const envelope = obj<Pick<CheckpointManifest, 'format' | 'blobs'>>({ format: lit(CHECKPOINT_FORMAT), blobs: archiveBlobs }, { extra: 'strip' });

/** The archive's manifest: the shared checkpoint fields, plus its format and blobs. */
const archiveManifest: Validator<CheckpointManifest> = (v, path = 'manifest') => {
  const { format, blobs } = envelope(v, path);
  const { format: _f, blobs: _b, ...rest } = v as Record<string, unknown>;
  return { format, ...checkpointInfo(rest, path), blobs };
};

/** Validate untrusted manifest bytes (from an import, a store, a peer) strictly; returns it typed. */
export function parseManifest(bytes: Uint8Array | string): CheckpointManifest {
  return parseWith(archiveManifest, bytes, 'EINVAL_ARG', 'the checkpoint manifest', 'the checkpoint is damaged or not made by tsmigrate; use another one');
}
