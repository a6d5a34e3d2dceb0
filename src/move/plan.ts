/** Pure decisions of a move, table-tested. */

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
