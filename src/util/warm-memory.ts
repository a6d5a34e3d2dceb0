import { closeSync, openSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import { setImmediate as tick } from 'node:timers/promises';
import { allocateFile, prefaultMemory, releaseMemory, type PrefaultHandle } from '../native/native.js';

const CHUNK = 64 << 20;
const STEP = 8 << 20;
/** chunk sizes are multiples of this (a page on every Linux architecture), so that the counts stay exact */
const ALIGN = 64 << 10;

export interface WarmOptions {
  keepFree?: number;
  signal?: AbortSignal;
  freeMemory?: () => number;
}

/** The size of the next chunk to take of `want` (0: stop), within the bounds above. */
function budget(o: WarmOptions): (want: number) => number {
  const freeMemory = o.freeMemory ?? os.freemem;
  const keepFree = o.keepFree ?? Math.max(512 << 20, os.totalmem() / 10);
  // free memory read again for every chunk: another reservation (the peer's, when both
  // ends share a machine) may be taking it at the same time
  return (want) => Math.max(0, Math.floor(Math.min(CHUNK, want, freeMemory() - keepFree) / ALIGN) * ALIGN);
}

/**
 * How much of `want` to preallocate as an image pool on a filesystem: only on
 * tmpfs (on a disk the write allocates page cache all the same), and only
 * where at least as much again stays free for the other images (the pool's
 * excess goes back only at the end of the transfer). 0: no pool.
 */
export function poolSize(want: number, fsys: { tmpfs: boolean; freeBytes: number }): number {
  if (!fsys.tmpfs || want <= 0) return 0;
  return fsys.freeBytes >= 2 * want ? Math.floor(want / ALIGN) * ALIGN : 0;
}

/**
 * Create `file` (0600, must not exist) with up to `bytes` allocated
 * (fallocate, within the same bounds as WarmMemory.reserve): on tmpfs, memory
 * faulted in that a write can then fill without allocating (LiveImageWriter's
 * pool). The bytes allocated; 0, and no file, when nothing could be.
 */
export async function preallocateFile(file: string, bytes: number, o: WarmOptions = {}): Promise<number> {
  const next = budget(o);
  const fd = openSync(file, 'wx', 0o600);
  let done = 0;
  try {
    while (done < bytes && !o.signal?.aborted) {
      const n = next(bytes - done);
      if (n <= 0 || !allocateFile(fd, done, n)) break;
      done += n;
      await tick();
    }
  } finally {
    closeSync(fd);
    if (done === 0) unlinkSync(file);
  }
  return done;
}

/**
 * Memory faulted in before a container is frozen and handed back to the kernel
 * just before the downtime needs it (the images written to tmpfs, the restored
 * container's pages).
 *
 * Why: a virtual machine that reports free memory to its hypervisor (virtio
 * free page reporting, about two seconds after the memory was freed) pays
 * three to four times the normal cost on the next touch of that memory; here a
 * 256 MiB restore took 1.1 s into such memory and 0.4 s into memory freed a
 * moment earlier. Memory handed back just before use is still backed. On a
 * host without reporting this moves page zeroing out of the downtime and costs
 * nothing inside it.
 *
 * Bounded: never takes memory that would leave less than `keepFree` available,
 * checked before every 64 MiB; best effort (an empty reserve without the native
 * addon or when the kernel refuses).
 */
export class WarmMemory {
  private readonly chunks: { h: PrefaultHandle; bytes: number }[] = [];
  private held = 0;
  private owed = 0;

  private constructor() {}

  /** Fault in up to `bytes`, a chunk at a time, yielding to the event loop in between. */
  static async reserve(bytes: number, o: WarmOptions = {}): Promise<WarmMemory> {
    const next = budget(o);
    const w = new WarmMemory();
    let want = Math.max(0, bytes);
    while (want > 0 && !o.signal?.aborted) {
      const n = next(want);
      if (n <= 0) break;
      const h = prefaultMemory(n);
      if (!h) break;
      w.chunks.push({ h, bytes: n });
      w.held += n;
      want -= n;
      await tick();
    }
    return w;
  }

  /** Bytes still held. */
  get bytes(): number {
    return this.held;
  }

  /** Give back `bytes` (the most recently faulted first). */
  release(bytes: number): void {
    let left = Math.min(bytes, this.held);
    while (left > 0) {
      const c = this.chunks[this.chunks.length - 1]!;
      const cut = Math.min(left, c.bytes);
      const rest = releaseMemory(c.h, cut);
      this.held -= c.bytes - rest;
      left -= c.bytes - rest;
      c.bytes = rest;
      if (rest === 0) this.chunks.pop();
    }
  }

  releaseAll(): void {
    this.release(this.held);
  }

  /**
   * For a writer about to take `n` bytes of memory: give back as much, in
   * steps of 8 MiB, ahead of the write (so that the write lands in the pages
   * just freed).
   */
  readonly beforeUse = (n: number): void => {
    this.owed += n;
    if (this.owed <= 0 || this.held === 0) return;
    const step = Math.ceil(this.owed / STEP) * STEP;
    this.release(step);
    this.owed -= step;
  };
}
