import type { AgentApi, PutImagesResult, StreamResult } from '../agent/api.js';
import type { SendStats } from '../transfer/send.js';
import type { ContainerConfig } from '../container/types.js';
import type { StdioKeys } from '../container/stdio.js';
import type { NetworkPlan } from '../network/setup.js';
import type { MigrationPlan } from './plan.js';
import type { LockPlan } from './file-locks.js';

/** What the source knows of the container before anything is sent or frozen. */
export interface SourceFacts {
  config: ContainerConfig;
  network: NetworkPlan | null;
  stdio: StdioKeys;
  epoch: number;
  memoryBytes: number;
  /** the upper layer, the log files a move sends, the image's rootfs: each file rounded up to whole blocks (peer-check.ts) */
  upperBytes: number;
  logBytes: number;
  imageBytes: number;
  /** CRIU's cpuinfo image of this host, base64, for the peer's compatibility check */
  cpuinfo: string;
  image: { name: string; digest: string };
  staging: { tmpfs: boolean; freeBytes: number };
  /** pass CRIU's --file-locks (file-locks.ts: always, it costs nothing) */
  fileLocks: boolean;
  /** the locks the container's processes held when inspected */
  locks: LockPlan['held'];
}

export interface LinkMeasure {
  plainBps: number;
  zstdBps: number;
  /** zstd alone on this host: its ratio on heap-like data and its rate */
  zstd: { ratio: number; bps: number };
}

export interface Progress {
  (e: { phase: string; bytes?: number; totalBytes?: number; message?: string }): void;
}

/** What was sent while the container ran; the frozen phase sends only what changed since. */
export interface RunningCopy {
  upperBase: StreamResult;
  logsBytes: number;
}

export interface Warmed {
  sourceBytes: number;
  peerBytes: number;
  peerPoolBytes: number;
  ms: number;
}

/** What left while frozen: the images, the upper layer's delta, the log's tail. */
export interface FrozenCopy {
  images: SendStats & { peer: PutImagesResult };
  upperDelta: StreamResult;
  logsBytes: number;
  imagesVia: { via: 'stream' | 'files'; note?: string };
  /** performance.now() when CRIU had dumped */
  dumpedAt: number;
}

/**
 * The source side's side effects of a move, one method per step, so that the
 * state machine (machine.ts) reads top to bottom and tests drive it with a
 * fake. The real one is local-source.ts. Every method that takes a signal
 * stops when it is aborted; none of them journals or rolls back: the machine
 * does, through its undo stack.
 */
export interface MoveSource {
  /** read-only: the facts the pre-flight and the planner need */
  inspect(): Promise<SourceFacts>;
  /** the container's image, if the peer lacks it */
  sendImage(peer: AgentApi, signal: AbortSignal | undefined): Promise<number>;
  /** the link's rates, plain and through zstd (each only where it may be used: both when the choice is automatic) */
  measureLink(peer: AgentApi, modes: { plain: boolean; zstd: boolean }): Promise<LinkMeasure>;
  /** the upper layer and the log, while the container runs */
  sendRunning(peer: AgentApi, id: string, plan: MigrationPlan, signal: AbortSignal | undefined, emit: Progress): Promise<RunningCopy>;
  /** memory the downtime needs, faulted in on both sides (handed back by releaseWarm) */
  warm(peer: AgentApi, id: string, plan: MigrationPlan, signal: AbortSignal | undefined): Promise<Warmed>;
  releaseWarm(): void;
  /** the images' way out of CRIU set up (the streamer listening, or a directory for files) */
  prepareImages(plan: MigrationPlan): Promise<void>;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /**
   * Frozen: dump with CRIU and send the upper delta, the log's tail and the
   * images while CRIU writes them. Once CRIU has dumped, the source's side of
   * the container's link goes down (onLinkDown: the machine's undo brings it up).
   */
  dumpAndSend(peer: AgentApi, id: string, plan: MigrationPlan, running: RunningCopy, signal: AbortSignal | undefined, emit: Progress, onLinkDown: () => void): Promise<FrozenCopy>;
  /** the source's side of the container's link up again (rollback) */
  linkUp(): Promise<void>;
  /** the peer runs the container: kill and remove the frozen copy here */
  removeCopy(): Promise<void>;
  /** staging and other scratch of the move (always, at the end) */
  cleanup(): Promise<void>;
}
