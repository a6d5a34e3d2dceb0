/** Pure decisions of a move, table-tested. */
import { TsmError } from '../errors/errors.js';
import { estimateDowntime, type DowntimeEstimate, type Rates } from './estimate.js';

export type CompressChoice = 'auto' | 'on' | 'off';

/**
 * zstd pays when it moves the data faster end to end. Both rates are measured
 * through the real connection with heap-like data (bytes before compression
 * per second): on a slow network zstd wins by shrinking the stream; on a fast
 * link, or where compressor and cipher share a busy CPU, it loses. It must win
 * by 10% to be used. The user may force it.
 */
export function chooseCompression(force: CompressChoice, plainBps: number, zstdBps: number): boolean {
  if (force === 'on') return true;
  if (force === 'off') return false;
  if (!(plainBps > 0) || !(zstdBps > 0)) return false;
  return zstdBps > plainBps * 1.1;
}

/**
 * How the images leave CRIU: files in tmpfs followed as they grow, or its
 * image streamer (criu dump --stream, no copy in tmpfs). Files by default: the
 * peer can then restore while they arrive (the source sends a manifest once
 * CRIU has exited; stream-serve.ts), which took the downtime at 256 MiB from
 * 1.58-1.65 s (streamer) to 1.19-1.29 s on 2-core hosts, and at 1 GiB files
 * were ahead even before. The streamer where the files would not fit in
 * tmpfs (staging on disk, or less free than 1.5 times the memory), or when
 * the user forces one (undefined = auto).
 */
export function chooseImagePath(force: boolean | undefined, memoryBytes: number, staging: { tmpfs: boolean; freeBytes: number }): { stream: boolean; why: string } {
  if (force !== undefined) return { stream: force, why: force ? 'asked for (--criu-stream on)' : 'asked for (--criu-stream off)' };
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  if (!staging.tmpfs) return { stream: true, why: `auto: the staging directory is not in tmpfs; ${mib(memoryBytes)} of memory streamed instead of written to disk` };
  if (staging.freeBytes < memoryBytes * 1.5) return { stream: true, why: `auto: ${mib(staging.freeBytes)} free in tmpfs for ${mib(memoryBytes)} of memory` };
  return { stream: false, why: `auto: ${mib(memoryBytes)} of memory; files in tmpfs, so that the peer restores as they arrive` };
}

export interface Downtime {
  freezeMs: number;
  dumpMs: number;
  transferMs: number;
  restoreMs: number;
  resumeMs: number;
  totalMs: number;
}

export function migrationId(rand: string, now: Date): string {
  return `m-${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${rand}`;
}

/** --max-downtime when none is given: see planMigration. */
export const DEFAULT_MAX_DOWNTIME_MS = 30_000;

/**
 * `--max-downtime`: a duration (`500ms`, `10s`, `2m`, a plain number being
 * seconds), or `off` for no bound.
 */
export function parseMaxDowntime(text: string): number | null {
  const s = String(text).trim();
  if (s === 'off' || s === 'none') return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s);
  const value = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000) : Number.NaN;
  if (!(value >= 100) || value > 3_600_000) {
    throw new TsmError('EINVAL_ARG', `invalid --max-downtime ${JSON.stringify(s.slice(0, 40))}`, {
      fix: 'give a duration between 100ms and 60m, e.g. 500ms, 10s or 2m, or off for no bound',
    });
  }
  return Math.round(value);
}

export interface MigrationFacts {
  compress: CompressChoice;
  link: { plainBps: number; zstdBps: number };
  memoryBytes: number;
  upperBytes: number;
  /** CRIU's image streamer forced on or off (undefined: auto) */
  criuStream: boolean | undefined;
  staging: { tmpfs: boolean; freeBytes: number };
  restoreWhileReceiving: boolean;
  warmMemory: boolean;
  /** null: no bound */
  maxDowntimeMs: number | null;
  rates: Rates;
  /** the container holds file locks (CRIU's --file-locks) */
  fileLocks: boolean;
}

export interface MigrationPlan {
  useZstd: boolean;
  imagePath: { stream: boolean; why: string };
  /** the peer restores as the images arrive (following files only: the streamer has no manifest to start from) */
  restoreWhileReceiving: boolean;
  warm: { sourceBytes: number; peerBytes: number };
  criu: { tcpEstablished: boolean; fileLocks: boolean };
  estimate: DowntimeEstimate;
  /** the bound the frozen phase is held to, null for none */
  maxDowntimeMs: number | null;
  /** why the move must not start, or null */
  refusal: string | null;
}

/**
 * Every decision of a move from the facts measured before the freeze.
 *
 * The default bound of 30 s holds a few GiB on a 10 Gbit/s link and 1 GiB on
 * 1 Gbit/s with room to spare, and stays inside what TCP peers (minutes of
 * retransmission) and most clients' request timeouts (30-60 s) survive: a
 * move that would take longer is refused before the freeze, with the
 * estimate, and one that runs over while frozen is rolled back.
 */
export function planMigration(f: MigrationFacts): MigrationPlan {
  const useZstd = chooseCompression(f.compress, f.link.plainBps, f.link.zstdBps);
  const imagePath = chooseImagePath(f.criuStream, f.memoryBytes, f.staging);
  const restoreWhileReceiving = !imagePath.stream && f.restoreWhileReceiving;
  const estimate = estimateDowntime({
    memoryBytes: f.memoryBytes,
    upperDeltaBytes: f.upperBytes,
    linkBps: useZstd ? f.link.zstdBps : f.link.plainBps,
    restoreWhileReceiving,
    rates: f.rates,
  });
  const refusal =
    // a link that could not be measured estimates nothing: the bound then holds while frozen only
    f.maxDowntimeMs !== null && Number.isFinite(estimate.totalMs) && estimate.totalMs > f.maxDowntimeMs
      ? `the downtime would be about ${fmtMs(estimate.totalMs)} (dump ${fmtMs(estimate.dumpMs)}, transfer ${fmtMs(estimate.transferMs)} at ${Math.round((useZstd ? f.link.zstdBps : f.link.plainBps) / 1e6)} MB/s, restore ${fmtMs(estimate.restoreMs)}), over the --max-downtime of ${fmtMs(f.maxDowntimeMs)}`
      : null;
  const warmBytes = f.warmMemory ? f.memoryBytes : 0;
  return {
    useZstd,
    imagePath,
    restoreWhileReceiving,
    warm: { sourceBytes: warmBytes, peerBytes: 2 * warmBytes },
    criu: { tcpEstablished: true, fileLocks: f.fileLocks },
    estimate,
    maxDowntimeMs: f.maxDowntimeMs,
    refusal,
  };
}

export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return 'unbounded';
  return n < 10_000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n / 1000)} s`;
}
