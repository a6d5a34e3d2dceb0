/** Pure decisions of a move, table-tested. */

export type CompressChoice = 'auto' | 'on' | 'off';

/**
 * zstd pays when the link is slower than the compressor: compressing at Z B/s a
 * stream that shrinks to ratio r and crosses a link of L B/s costs max(1/Z, r/L)
 * per byte instead of 1/L. Decide from measured rates; the user may force it.
 */
export function chooseCompression(force: CompressChoice, linkBps: number, zstdBps: number, ratio: number): boolean {
  if (force === 'on') return true;
  if (force === 'off') return false;
  if (!(linkBps > 0) || !(zstdBps > 0)) return false;
  const plain = 1 / linkBps;
  const zstd = Math.max(1 / zstdBps, ratio / linkBps);
  return zstd < plain * 0.9;
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
