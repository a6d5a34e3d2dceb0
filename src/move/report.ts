import type { AgentApi } from '../agent/api.js';
import type { DowntimeEstimate } from './estimate.js';
import type { Downtime } from './plan.js';
import type { LockPlan } from './file-locks.js';

export interface PeerConnection {
  agent: AgentApi;
  close(): Promise<void>;
}

export interface MoveEvent {
  phase: string;
  bytes?: number;
  totalBytes?: number;
  message?: string;
}

export interface MoveReport {
  id: string;
  name: string;
  host: string;
  epoch: number;
  downtime: Downtime;
  /** estimated before the freeze (estimate.ts), and the bound it was held to (null: none) */
  estimate: DowntimeEstimate;
  maxDowntimeMs: number | null;
  /** the peer's restore (downtime.restoreMs) split: cgroups, rootfs and network set up, then criu restore */
  /** duringTransfer: CRIU restored while the images arrived; restore (above) is then only what was left after the last byte, */
  /** of which CRIU itself ran criuAfterLastByteMs (restoring what came last; the rest is round trips and bookkeeping) */
  restoreParts: { setupMs: number; criuMs: number; duringTransfer: boolean; criuAfterLastByteMs?: number };
  preCopy: string;
  /** memory faulted in before the freeze, handed back to the kernel as the downtime needed it, and how long that took */
  /** peerPoolBytes: of peerBytes, a tmpfs file preallocated for the largest pages image */
  warmMemory: { sourceBytes: number; peerBytes: number; peerPoolBytes: number; ms: number };
  /** how the images left CRIU: 'stream' (its image streamer, no tmpfs copy) or 'files' (tmpfs, followed as written), and why */
  images: { via: 'stream' | 'files'; note?: string };
  /** link: measured MB/s sent plain, and through zstd (bytes before compression); ratio: images on the wire / images */
  compression: { used: boolean; linkMBps: number; linkZstdMBps: number; zstdMBps: number; ratio: number };
  /** logs: the container's log files and OOM record, sent while it ran and in the downtime */
  bytes: { upperBase: number; upperDelta: number; images: number; imagesTar: number; image: number; logs: number };
  tcpEstablished: boolean;
  /** what CRIU carried besides memory: established TCP connections, file locks (and which the container held at the check, file-locks.ts) */
  carried: { tcpEstablished: boolean; fileLocks: boolean; locks?: LockPlan['held'] };
  network: { ip: string | null; keptIp: boolean };
  totalMs: number;
  at: string;
}
