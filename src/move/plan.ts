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
