import type { Readable } from 'node:stream';
import type { ContainerConfig } from '../container/types.js';
import type { CriuDeadlineSettings } from '../criu/deadline.js';
import type { NetworkPlan } from '../network/setup.js';
import type { StoreApi } from '../store/api.js';
import type { SignatureRecord } from '../sign/signature.js';
import type { SpaceUse } from './peer-space.js';

/**
 * What the source of a move asks of the destination. One TypeScript interface:
 * served over SSH (`tsmigrate agent --stdio`) in production, called in-process
 * in tests. Methods whose last parameter is a Readable carry bulk data.
 */
export const PROTOCOL_VERSION = 6;

export interface HelloResult {
  protocol: number;
  tool: string;
  version: string;
  hostname: string;
  root: string;
  criu: { version: string; ok: boolean };
  cgroup: { kind: string; controllers: string[] };
  memDirtyTrack: boolean;
  /** random, one per connection: what the source signs for this connection is bound to it (move/statement.ts) */
  challenge: string;
}

export interface PreflightRequest {
  name: string;
  config: ContainerConfig;
  network: NetworkPlan | null;
  /** the source's `criu cpuinfo dump` image, base64 */
  cpuinfo: string | null;
  memoryBytes: number;
  /** the upper layer's files, each rounded up to whole blocks */
  upperBytes: number;
  /** the container's log files and OOM record (absent from older sources: 0) */
  logBytes?: number;
  /** the image's unpacked rootfs, counted when the peer lacks it (absent from older sources: 0) */
  imageBytes?: number;
  /** when the source and the peer share one machine (local test hosts), the lease owner that may hand over the IP */
  leaseOwner: { root: string; container: string } | null;
  epoch: number;
}

export interface PreflightResult {
  ok: boolean;
  problems: Array<{ check: string; message: string; fix: string }>;
  needImage: boolean;
  /** free bytes of the state root's filesystem */
  freeBytes: number;
  /** every filesystem the move writes to on the peer: what goes there, the margin, what is free (peer-space.ts) */
  space?: SpaceUse[];
}

export interface BeginRequest {
  migrationId: string;
  epoch: number;
  name: string;
  config: ContainerConfig;
  network: NetworkPlan | null;
  leaseOwner: { root: string; container: string } | null;
  stdio: { stdout: string; stderr: string };
  criuOptions: { tcpEstablished: boolean; fileLocks: boolean };
  /** the container's memory, as given to preflight: the peer stages the images where preflight counted them */
  memoryBytes?: number;
  /** the upper layer's size, as given to preflight: what each putUpper stream may expand to is bounded by it (archive/limits.ts) */
  upperBytes?: number;
  /** the source's --criu-deadline: the peer's restore keeps to it (default: the peer's own setting) */
  criuDeadline?: CriuDeadlineSettings;
  /**
   * how long after prepare the peer holds the restored copy for the source's decision, in ms;
   * then it aborts by itself and refuses a commit (agent/hold.ts; default DEFAULT_HOLD_MS)
   */
  holdMs?: number;
  /** the source's signature over what it asks (move/statement.ts), checked against the peer's trusted keys */
  signed: SignedStatement;
}

/** A statement (exact JSON text) and the signature over it. */
export interface SignedStatement {
  statement: string;
  signature: SignatureRecord;
}

/** BeginRequest.holdMs: the default (well past the source's commit retries, short enough not to hold a copy's memory and address for long) and its bounds */
export const DEFAULT_HOLD_MS = 120_000;
export const MIN_HOLD_MS = 1_000;
export const MAX_HOLD_MS = 3_600_000;

export interface PutUpperRequest {
  migrationId: string;
  phase: 'base' | 'delta';
  /** paths (relative to the upper dir) removed since the base was sent */
  deleted: string[];
  compression: 'zstd' | 'none';
  /** default sha256 */
  checksum?: Checksum;
}

/** The container's log files and OOM record (transfer/container-logs.ts). */
export interface PutLogsRequest {
  migrationId: string;
  /** remove the log files and OOM record there first (a first send, or the log rotated since) */
  replace: boolean;
  /** in stream order: `bytes` of `file` written at `offset` (the file is cut there first) */
  parts: Array<{ file: string; offset: number; bytes: number }>;
  compression: 'zstd' | 'none';
  /** default sha256 */
  checksum?: Checksum;
}

export interface PutImagesRequest {
  migrationId: string;
  compression: 'zstd' | 'none';
  /** 'tar' (default), or 'records': written while CRIU dumps (transfer/live-images.ts) */
  format?: 'tar' | 'records';
  /** default sha256 */
  checksum?: Checksum;
  /**
   * Restore while the images arrive ('records' with a manifest; see
   * transfer/stream-serve.ts): CRIU starts at the manifest, held stopped as
   * prepare leaves it; the call returns once both are done. `upper` are the
   * digests of the upper layer's streams received before, checked first.
   * prepare then only checks the images' digest.
   */
  restore?: { upper: string[] };
}

/** putImages' result: the stream's, and where it restored while receiving, that restore's parts */
export interface PutImagesResult extends StreamResult {
  restore?: {
    /** cgroups, rootfs and network set up; criu restore (from the manifest on) */
    setupMs: number;
    criuMs: number;
    /** how long the restore went on after the last byte had arrived */
    tailMs: number;
    /** of tailMs, how long CRIU itself still ran (restoring what came last); the rest is the agent's */
    criuTailMs?: number;
  };
}

/**
 * How a stream is checked end to end: sha256, or CRC-32 where SSH's own
 * authenticated encryption already guards the wire and the check only has to
 * catch our own framing, pipes and files going wrong (as zfs send's fletcher4
 * and btrfs send's crc32c do); CRC-32 costs a third of sha256's CPU.
 */
export type Checksum = 'sha256' | 'crc32';

/** bytes received and their digest ("sha256:<hex>" or "crc32:<hex>"), as the peer saw them */
export interface StreamResult {
  bytes: number;
  digest: string;
}

export interface PrepareResult {
  restoreMs: number;
  initPid: number;
  /** parts of restoreMs: cgroups, rootfs and network set up; criu restore; records after it */
  setupMs: number;
  criuMs: number;
}

/** Whether a container runs on a host (disaster recovery asks every host before restoring). */
export interface ContainerStatusResult {
  /** 'absent' when the host has no container of that name */
  status: string;
  /** the highest migration epoch this host has seen for the name */
  epochSeen: number;
}

export interface AgentApi extends StoreApi {
  hello(p: { protocol: number; tool: string; version: string }): Promise<HelloResult>;
  preflight(p: PreflightRequest): Promise<PreflightResult>;
  putImage(p: { name: string; digest: string }, data: Readable): Promise<StreamResult>;
  begin(p: BeginRequest): Promise<{ ok: true }>;
  putUpper(p: PutUpperRequest, data: Readable): Promise<StreamResult>;
  /** the container's log files and OOM record, checked against the log policy of begin's config */
  putLogs(p: PutLogsRequest, data: Readable): Promise<StreamResult>;
  /**
   * before the freeze: fault in up to `bytes` of memory, handed back to the kernel as the
   * images arrive and when the restore starts (util/warm-memory.ts); what it holds, and how
   * much of it is a tmpfs file preallocated for the largest pages image (LiveImageWriter's pool)
   */
  warm(p: { migrationId: string; bytes: number }): Promise<{ bytes: number; ms: number; poolBytes: number }>;
  putImages(p: PutImagesRequest, data: Readable): Promise<PutImagesResult>;
  /** discard the stream: measures the link before choosing compression */
  probe(p: { bytes: number; compression?: 'zstd' | 'none'; checksum?: Checksum }, data: Readable): Promise<StreamResult>;
  /**
   * verify that every stream arrived as the source sent it (the digests of the bytes on the
   * wire), then restore the tree, held stopped: after this the peer keeps it until commit or abort
   */
  prepare(p: { migrationId: string; expect: { images: string; upper: string[] }; signed: SignedStatement }): Promise<PrepareResult>;
  commit(p: { migrationId: string }): Promise<{ resumeMs: number }>;
  abort(p: { migrationId: string }): Promise<{ ok: true }>;
  status(p: { migrationId: string }): Promise<{ phase: string }>;
  containerStatus(p: { name: string }): Promise<ContainerStatusResult>;
}

/** The methods that take a bulk data stream as their second argument. */
export const STREAM_METHODS = ['putImage', 'putUpper', 'putLogs', 'putImages', 'probe', 'storePutChunks', 'storePutSnapshot', 'storePutIndex'] as const;
