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

/** At most this much container memory streams its images from CRIU by default. */
export const STREAM_MAX_BYTES = 512 << 20;

/**
 * How the images leave CRIU: its image streamer (criu dump --stream, no tmpfs
 * copy) or files in tmpfs followed as they grow. Measured on 2-core hosts,
 * each path against the other in the same bench run: at 256 MiB the streamer
 * cut the downtime by 12-14%, at 1 GiB it added 11-31% (it ties CRIU to the
 * transfer's pace a pipe's worth at a time, where the files let CRIU finish
 * early). So: stream small containers, follow files for large ones, unless the
 * user forces one (undefined = auto).
 */
export function chooseImagePath(force: boolean | undefined, memoryBytes: number): { stream: boolean; why: string } {
  if (force !== undefined) return { stream: force, why: force ? 'asked for (--criu-stream on)' : 'asked for (--criu-stream off)' };
  const mib = Math.round(memoryBytes / 2 ** 20);
  return memoryBytes <= STREAM_MAX_BYTES
    ? { stream: true, why: `auto: ${mib} MiB of memory; streamed up to ${STREAM_MAX_BYTES >> 20} MiB` }
    : { stream: false, why: `auto: ${mib} MiB of memory; files above ${STREAM_MAX_BYTES >> 20} MiB` };
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
