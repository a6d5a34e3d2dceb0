/**
 * The watchdog of one CRIU run: it kills CRIU past its hard deadline, or once
 * nothing moved for the stall limit (deadline.ts plans both).
 *
 * Progress is any change in: the size of CRIU's log (it logs at -v4, a line
 * per task, VMA and file), the bytes in its images directory (also where a
 * move's images arrive while CRIU restores from them), CRIU's own CPU time,
 * and the CPU time of the container's cgroup (the dumped tasks run CRIU's
 * parasite, the restored tasks copy their own pages). A CRIU stopped by a
 * signal, asleep on a lock or blocked on a pipe nobody drains shows none of
 * these; one spinning in a loop is caught by the hard deadline.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CriuDeadline } from './deadline.js';

export interface ProgressSources {
  logPath?: string | undefined;
  imagesDir?: string | undefined;
  /** CRIU's pid */
  pid?: number | undefined;
  /** the container's cgroup CPU time in ns, if known */
  cgroupCpuNs?: (() => Promise<number | undefined>) | undefined;
}

export interface CriuExpiry {
  kind: 'deadline' | 'stalled';
  /** since CRIU started */
  afterMs: number;
  /** since anything last moved */
  quietMs: number;
  deadline: CriuDeadline;
}

export interface WatchState {
  startedAt: number;
  /** when the hard deadline's clock started (undefined: not yet) */
  hardFrom: number | undefined;
  mark: string | undefined;
  movedAt: number;
}

/** Pure: the state after a sample taken at `now`, and whether CRIU must be killed. */
export function judge(d: CriuDeadline, st: WatchState, now: number, mark: string): { state: WatchState; expiry?: CriuExpiry } {
  const state = mark !== st.mark ? { ...st, mark, movedAt: now } : st;
  const quietMs = now - state.movedAt;
  const afterMs = now - st.startedAt;
  if (state.hardFrom !== undefined && now - state.hardFrom >= d.hardMs) return { state, expiry: { kind: 'deadline', afterMs, quietMs, deadline: d } };
  if (d.stallMs > 0 && st.mark !== undefined && quietMs >= d.stallMs) return { state, expiry: { kind: 'stalled', afterMs, quietMs, deadline: d } };
  return { state };
}

async function sizeOf(file: string | undefined): Promise<number> {
  if (file === undefined) return 0;
  return (await fs.stat(file).catch(() => undefined))?.size ?? 0;
}

/** The bytes of the files in a directory (not below it); 0 for none. */
export async function filesBytes(dir: string | undefined): Promise<number> {
  if (dir === undefined) return 0;
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isFile()) total += await sizeOf(path.join(dir, e.name));
  }
  return total;
}

/** utime + stime + cutime + cstime of a process, in clock ticks (0 when gone). */
async function cpuTicks(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0;
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3; utime..cstime are fields 14..17
  return [11, 12, 13, 14].reduce((a, i) => a + (Number(f[i]) || 0), 0);
}

/** What the sources show now; any change between two marks is progress. */
export async function progressMark(s: ProgressSources): Promise<string> {
  const parts = await Promise.all([sizeOf(s.logPath), filesBytes(s.imagesDir), cpuTicks(s.pid), s.cgroupCpuNs?.().catch(() => undefined) ?? undefined]);
  return parts.map((p) => String(p ?? '-')).join(':');
}

export interface WatchOptions {
  deadline: CriuDeadline;
  sources: ProgressSources;
  /** called once, when the watchdog fires */
  kill: () => void;
  /** the hard deadline counts from when this settles (default: at once) */
  hardFrom?: Promise<unknown>;
}

export interface CriuWatch {
  /** resolves when the watchdog fired (after kill() was called); never otherwise */
  readonly expired: Promise<CriuExpiry>;
  fired(): CriuExpiry | undefined;
  stop(): void;
}

/** Watch a CRIU run until stop(). */
export function watchCriu(o: WatchOptions): CriuWatch {
  const t0 = performance.now();
  let st: WatchState = { startedAt: t0, hardFrom: o.hardFrom ? undefined : t0, mark: undefined, movedAt: t0 };
  void o.hardFrom?.finally(() => {
    st = { ...st, hardFrom: performance.now() };
  }).catch(() => undefined);
  const limit = Math.min(o.deadline.hardMs, o.deadline.stallMs || Infinity);
  const every = Math.max(100, Math.min(1000, Math.floor(limit / 6)));
  let fired: CriuExpiry | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let fire!: (x: CriuExpiry) => void;
  const expired = new Promise<CriuExpiry>((resolve) => (fire = resolve));
  const tick = async () => {
    const mark = await progressMark(o.sources);
    if (stopped) return;
    const r = judge(o.deadline, st, performance.now(), mark);
    st = r.state;
    if (r.expiry) {
      fired = r.expiry;
      stopped = true;
      o.kill();
      fire(r.expiry);
      return;
    }
    timer = setTimeout(() => void tick(), every);
  };
  void tick();
  return {
    expired,
    fired: () => fired,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/** Signal a process group, ignoring one that is gone. */
export function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!(pgid > 1)) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    /* gone */
  }
}
