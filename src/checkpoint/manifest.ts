import type { ContainerConfig } from '../container/types.js';
import { validStdio } from '../container/stdio.js';
import { TsmError } from '../errors/errors.js';
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
  blobs: Record<BlobName, BlobInfo>;
}

const ID = /^[a-z0-9][a-z0-9_.-]{0,127}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** A checkpoint's --tag: 1-64 characters [A-Za-z0-9_.:-]; throws one clear error otherwise. */
export function validateTag(tag: string | undefined): void {
  if (tag !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(tag)) {
    throw new TsmError('EINVAL_ARG', `invalid --tag "${tag}"`, { fix: 'use 1-64 characters [A-Za-z0-9_.:-]' });
  }
}

export function isCheckpointId(s: string): boolean {
  return ID.test(s);
}

export function checkpointId(name: string, now: Date, rand: string): string {
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'z').toLowerCase();
  return `${name}-${ts}-${rand}`;
}

const bad = (what: string) =>
  new TsmError('EINVAL_ARG', `not a valid checkpoint manifest: ${what}`, { fix: 'the checkpoint is damaged or not made by tsmigrate; use another one' });

/** Validate untrusted manifest JSON (from an import or a peer); returns it typed. */
export function parseManifest(text: string): CheckpointManifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const o = m as Partial<CheckpointManifest>;
  if (typeof o !== 'object' || o === null) throw bad('not an object');
  if (o.format !== CHECKPOINT_FORMAT) throw bad(`format ${JSON.stringify(o.format)} (want ${CHECKPOINT_FORMAT})`);
  if (typeof o.id !== 'string' || !ID.test(o.id)) throw bad('bad id');
  if (!o.container || typeof o.container.name !== 'string' || !Array.isArray(o.container.command)) throw bad('bad container config');
  if (!o.image || typeof o.image.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(o.image.digest)) throw bad('bad image digest');
  if (!validStdio(o.stdio)) throw bad('bad stdio');
  if (!o.blobs) throw bad('no blobs');
  for (const b of BLOB_NAMES) {
    const info = o.blobs[b];
    if (!info || info.file !== `${b}.tar.zst` || !HEX64.test(info.sha256) || !Number.isSafeInteger(info.size) || info.size < 0) {
      throw bad(`bad blob ${b}`);
    }
  }
  return o as CheckpointManifest;
}
