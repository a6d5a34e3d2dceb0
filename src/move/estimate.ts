/**
 * The downtime a move will take, estimated before the freeze from what was
 * measured: the link (plain and through zstd, bytes before compression per
 * second), the container's memory, and the rates at which CRIU dumps and
 * restores (learned from this host's past moves, else cautious defaults).
 * Pure: table-tested.
 *
 * The images leave as CRIU writes them and, following files, the peer
 * restores as they arrive, so dump, transfer and restore overlap: the
 * downtime is about the slowest of them plus what cannot overlap (the
 * freeze, the restore's tail after the last byte, the resume, round trips).
 */

export interface Rates {
  /** bytes of memory CRIU dumps per second on this host */
  dumpBps: number;
  /** bytes of memory CRIU restores per second (on the peer) */
  restoreBps: number;
  /** what no byte count explains: freeze, round trips, set-up, resume */
  fixedMs: number;
}

/** Cautious where nothing was measured yet: slower than CRIU is on a 2-core VM. */
export const DEFAULT_RATES: Rates = { dumpBps: 400e6, restoreBps: 400e6, fixedMs: 400 };

export interface EstimateFacts {
  memoryBytes: number;
  /** what changed in the upper layer since its copy was sent (at most the whole layer) */
  upperDeltaBytes: number;
  /** bytes before compression per second through the link, as they will be sent */
  linkBps: number;
  restoreWhileReceiving: boolean;
  rates: Rates;
}

export interface DowntimeEstimate {
  dumpMs: number;
  transferMs: number;
  restoreMs: number;
  fixedMs: number;
  totalMs: number;
}

/** Made pessimistic: a refusal for an estimate that was 20% high costs less than a budget blown while frozen. */
const MARGIN = 1.2;

export function estimateDowntime(f: EstimateFacts): DowntimeEstimate {
  const perMs = (bytes: number, bps: number) => (bps > 0 ? (bytes / bps) * 1000 : Number.POSITIVE_INFINITY);
  const dumpMs = perMs(f.memoryBytes, f.rates.dumpBps);
  const transferMs = perMs(f.memoryBytes + f.upperDeltaBytes, f.linkBps);
  const restoreMs = perMs(f.memoryBytes, f.rates.restoreBps);
  // the restore overlaps the transfer only while the images arrive; a quarter of it is left after the last byte
  const overlapped = f.restoreWhileReceiving ? Math.max(dumpMs, transferMs, restoreMs * 0.75) + restoreMs * 0.25 : Math.max(dumpMs, transferMs) + restoreMs;
  const round = (x: number) => (Number.isFinite(x) ? Math.round(x) : x);
  return {
    dumpMs: round(dumpMs),
    transferMs: round(transferMs),
    restoreMs: round(restoreMs),
    fixedMs: f.rates.fixedMs,
    totalMs: round((overlapped + f.rates.fixedMs) * MARGIN),
  };
}

/** A past move, as history keeps it: enough to learn this host's rates from. */
export interface PastMove {
  memoryBytes: number;
  dumpMs: number;
  criuRestoreMs: number;
  overheadMs: number;
}

/**
 * Rates learned from the last moves (the median of each, so one slow move
 * does not set them), never faster than twice the defaults nor slower than a
 * tenth of them, so a bad record cannot make the estimate absurd.
 */
export function learnRates(past: readonly PastMove[], dflt: Rates = DEFAULT_RATES): Rates {
  const usable = past.filter((p) => p.memoryBytes >= 16 << 20 && p.dumpMs > 0 && p.criuRestoreMs > 0).slice(-10);
  if (usable.length < 2) return dflt;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const clamp = (x: number, d: number) => Math.min(2 * d, Math.max(d / 10, x));
  return {
    dumpBps: clamp(median(usable.map((p) => (p.memoryBytes / p.dumpMs) * 1000)), dflt.dumpBps),
    restoreBps: clamp(median(usable.map((p) => (p.memoryBytes / p.criuRestoreMs) * 1000)), dflt.restoreBps),
    fixedMs: Math.round(clamp(median(usable.map((p) => p.overheadMs)), dflt.fixedMs)),
  };
}
