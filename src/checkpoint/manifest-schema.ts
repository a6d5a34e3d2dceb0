/**
 * The one schema of a checkpoint's manifest, shared by both kinds of
 * checkpoint: an archive (manifest.ts, `blobs`) and a store snapshot
 * (store/snapshot.ts, `streams`). Strict, in the agent's style: unknown fields
 * refused, every string, number and list bounded, names and tags without
 * control characters, and limits only as the cgroup layer would write them, so
 * that a bad checkpoint fails where it is read, not at a cgroup write.
 */
import { containerConfig, networkPlan, NAME, IMAGE_DIGEST } from '../agent/schema.js';
import { bool, fail, lit, nullable, num, obj, oneOf, optional, refine, str, type Validator } from '../agent/protocol/validate.js';
import type { ContainerConfig } from '../container/types.js';
import type { Limits } from '../cgroup/limits.js';
import { expandCpuList, MAX_CPUS, PID_MAX_LIMIT } from '../cgroup/limits.js';
import { validStdio } from '../container/stdio.js';
import { TsmError } from '../errors/errors.js';
import type { CheckpointManifest } from './manifest.js';

/** The largest manifest read (bytes of JSON). */
export const MAX_MANIFEST_BYTES = 4 << 20;
/** The largest blob or stream a manifest may declare. */
export const MAX_BLOB_BYTES = 2 ** 50;

export const CHECKPOINT_ID = str({ max: 128, pattern: /^[a-z0-9][a-z0-9_.-]{0,127}$/ });
export const TAG = str({ max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/ });
export const HEX64 = str({ max: 64, min: 64, pattern: /^[0-9a-f]{64}$/ });
export const TIME = str({ max: 40, pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/ });
/** text from another host that is only shown: printable ASCII */
const PRINTABLE = (max: number) => str({ max, pattern: /^[\x20-\x7e]*$/ });
const MS = num({ min: 0, max: 1e9 });
export const BYTES = num({ int: true, min: 0, max: MAX_BLOB_BYTES });
const STDIO_KEY = str({ max: 64, pattern: /^(?:pipe:\[\d{1,20}\]|tty\[[0-9a-f]{1,16}:[0-9a-f]{1,16}\])$/ });

/** Why the cgroup layer would refuse these limits (v1 or v2 files), or undefined. Pure. */
export function limitsProblem(l: Limits): string | undefined {
  if (l.cpus !== undefined && (!/^\d+(?:\.\d{1,3})?$/.test(String(l.cpus)) || l.cpus < 0.01 || l.cpus > MAX_CPUS)) {
    return `cpus ${l.cpus} is not 0.01-${MAX_CPUS} with at most 3 decimals`;
  }
  if (l.cpusetCpus !== undefined) {
    try {
      expandCpuList(l.cpusetCpus);
    } catch (e) {
      return (e as Error).message;
    }
  }
  if (l.pidsLimit !== undefined && l.pidsLimit !== -1 && (l.pidsLimit < 1 || l.pidsLimit > PID_MAX_LIMIT)) {
    return `pids limit ${l.pidsLimit} is not 1-${PID_MAX_LIMIT} or -1 (max)`;
  }
  for (const k of ['memoryBytes', 'memoryReservationBytes'] as const) {
    const v = l[k];
    if (v !== undefined && (v < 4096 || v > MAX_BLOB_BYTES)) return `${k} ${v} is not 4096-2^50 bytes`;
  }
  return undefined;
}

const container: Validator<ContainerConfig> = (v, path = 'manifest') => {
  const c = containerConfig(v, path);
  const problem = limitsProblem(c.limits);
  if (problem) fail(`${path}.limits`, `${problem} (the cgroup layer would refuse it)`);
  // run --hostname takes any text (the kernel any 64 bytes): only control characters are refused
  if (/[\0-\x1f\x7f]/.test(c.hostname)) fail(`${path}.hostname`, 'contains a control character');
  if (/[\0-\x1f\x7f]/.test(c.workdir)) fail(`${path}.workdir`, 'contains a control character');
  return c;
};

export type CheckpointInfo = Omit<CheckpointManifest, 'format' | 'blobs'>;

/** The fields every checkpoint records, whatever kind (capture.ts checkpointInfo makes them). */
export const checkpointInfo: Validator<CheckpointInfo> = refine(obj<CheckpointInfo>({
  id: CHECKPOINT_ID,
  tag: nullable(TAG),
  createdAt: TIME,
  container,
  image: obj<CheckpointInfo['image']>({ name: NAME, digest: IMAGE_DIGEST }),
  network: nullable(networkPlan),
  stdio: refine(obj<CheckpointInfo['stdio']>({ stdout: STDIO_KEY, stderr: STDIO_KEY }), validStdio, 'pipes or one pty'),
  criu: obj<CheckpointInfo['criu']>({
    version: PRINTABLE(64),
    options: obj<CheckpointInfo['criu']['options']>({ tcpEstablished: bool(), fileLocks: bool(), leaveRunning: bool() }),
  }),
  host: obj<CheckpointInfo['host']>({ kernel: PRINTABLE(128), arch: PRINTABLE(32), hostname: PRINTABLE(255) }),
  timings: obj<CheckpointInfo['timings']>({ frozenMs: MS, dumpMs: MS, snapshotMs: MS, packMs: MS, totalMs: MS }),
}), (i) => i.image.digest === i.container.image.digest && i.image.name === i.container.image.name, "the container's own image");

const blob = <F extends string>(file: F) =>
  obj<CheckpointManifest['blobs']['criu']>({
    file: lit(file),
    sha256: HEX64,
    size: BYTES,
    compression: oneOf(lit('zstd'), lit('none')),
    entries: optional(num({ int: true, min: 0, max: 10_000_000 })),
    tarBytes: optional(BYTES),
  });

export const archiveBlobs = obj<CheckpointManifest['blobs']>({
  criu: blob('criu.tar.zst'),
  upper: blob('upper.tar.zst'),
  log: optional(blob('dump.log')),
});

/**
 * Parse manifest JSON from untrusted bytes with `schema`; every failure is one
 * TsmError (`code`) naming the field. Never anything else: property-tested.
 */
export function parseWith<T>(schema: Validator<T>, bytes: Uint8Array | string, code: 'EINVAL_ARG' | 'EINTEGRITY', what: string, fix: string): T {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new TsmError(code, `${what} is invalid: larger than ${MAX_MANIFEST_BYTES} bytes`, { fix });
  let v: unknown;
  try {
    v = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new TsmError(code, `${what} is invalid: not JSON`, { fix });
  }
  try {
    return schema(v, 'manifest');
  } catch (e) {
    throw new TsmError(code, `${what} is invalid: ${(e as Error).message.replace(/^bad message: /, '')}`, { fix });
  }
}
