import path from 'node:path';
import { thawIfCheckpointerDied } from '../checkpoint/capture.js';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { writeJsonAtomic } from '../state/atomic.js';
import { acquireLock, withLock } from '../state/lock.js';
import { nextDue } from './due.js';
import { lastRunOf, runSchedule } from './run.js';
import { ScheduleBook, timingOf, type Schedule } from './schedules.js';

export interface DaemonOptions {
  configFile: string;
  signal: AbortSignal;
  /** how often schedules are re-read and due times checked (default 1 s) */
  tickMs?: number;
  now?: () => Date;
  /** deliver the aborts moves could not (move/recover.ts settlePendingAborts), every SETTLE_MS */
  settleMoves?: () => Promise<string[]>;
}

interface Slot {
  lastRun: Date | null;
  /** after a failure: not before this */
  retryAt: Date | null;
  lastError: string | null;
  lastId: string | null;
}

const BUSY_RETRY_MS = 5_000;
const FAIL_RETRY_MS = 60_000;
const SETTLE_MS = 30_000;

/**
 * Run the schedules until the signal aborts: one daemon per state root (a
 * lock), schedules re-read every tick, each container's last run read from its
 * store (so a restart neither repeats nor skips one), a missed run caught up
 * once, a container that is busy (a move, another checkpoint) tried again a
 * few seconds later. On abort, the run in progress finishes first.
 */
export async function runDaemon(rt: Runtime, o: DaemonOptions): Promise<void> {
  const lock = await acquireLock(path.join(rt.paths.root, 'locks', 'daemon'), 'the tsmigrate daemon of this state root').catch((e: unknown) => {
    if (e instanceof TsmError && e.code === 'EBUSY') {
      throw new TsmError('EBUSY', `another tsmigrate daemon runs for ${rt.paths.root}`, { fix: 'run only one daemon per state root (systemctl status tsmigrate-daemon)' });
    }
    throw e;
  });
  const now = o.now ?? (() => new Date());
  const book = new ScheduleBook(rt.paths);
  const slots = new Map<string, Slot>();
  const statusFile = path.join(rt.paths.root, 'daemon-status.json');
  const writeStatus = async () => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of slots) out[k] = { lastRun: v.lastRun?.toISOString() ?? null, lastError: v.lastError, lastId: v.lastId, retryAt: v.retryAt?.toISOString() ?? null };
    await writeJsonAtomic(statusFile, { pid: process.pid, updatedAt: now().toISOString(), schedules: out }, 0o600).catch(() => undefined);
  };
  rt.logger.info(`daemon started for ${rt.paths.root} (pid ${process.pid})`);
  let settledAt = 0;
  try {
    while (!o.signal.aborted) {
      if (o.settleMoves && Date.now() - settledAt >= SETTLE_MS) {
        settledAt = Date.now();
        for (const line of await o.settleMoves().catch((e: Error) => [`pending move aborts: ${e.message}`])) rt.logger.info(line);
      }
      const schedules = await book.list().catch((e: Error) => {
        rt.logger.warn(`cannot read the schedules: ${e.message}`);
        return [] as Schedule[];
      });
      for (const key of [...slots.keys()]) if (!schedules.some((s) => s.container === key)) slots.delete(key);
      for (const s of schedules) {
        if (o.signal.aborted) break;
        let slot = slots.get(s.container);
        if (!slot) {
          // first sight: a checkpoint interrupted by a dead daemon may have left it frozen
          await withLock(rt.store.lockDir(s.container), `container ${s.container}`, () => thawIfCheckpointerDied(rt, s.container)).catch(() => undefined);
          const lastRun = await lastRunOf(rt, s, o.configFile).catch((e: Error) => {
            rt.logger.warn(`schedule ${s.container}: cannot read its store: ${e.message}`);
            return undefined;
          });
          if (lastRun === undefined) continue;
          slot = { lastRun, retryAt: null, lastError: null, lastId: null };
          slots.set(s.container, slot);
        }
        const t = now();
        let due: Date;
        try {
          due = nextDue(timingOf(s), slot.lastRun, new Date(s.createdAt));
        } catch (e) {
          slot.lastError = (e as Error).message;
          continue;
        }
        if (due > t || (slot.retryAt && slot.retryAt > t)) continue;
        try {
          const r = await runSchedule(rt, s, o.configFile);
          slot.lastRun = new Date(r.checkpoint.meta.createdAt);
          slot.lastId = r.checkpoint.meta.id;
          slot.retryAt = null;
          slot.lastError = null;
          rt.logger.info(
            `schedule ${s.container}: ${r.checkpoint.meta.id} (frozen ${r.checkpoint.meta.checkpoint.timings.frozenMs} ms, ${r.checkpoint.addedBytes} bytes added)` +
              `${r.prune.pruned.length ? `; pruned ${r.prune.pruned.join(', ')}` : ''}`,
          );
        } catch (e) {
          const busy = e instanceof TsmError && e.code === 'EBUSY';
          slot.lastError = (e as Error).message;
          slot.retryAt = new Date(now().getTime() + (busy ? BUSY_RETRY_MS : FAIL_RETRY_MS));
          rt.logger.warn(`schedule ${s.container}: ${busy ? 'busy, trying again shortly' : 'failed'}: ${e instanceof TsmError ? e.oneLine() : String(e)}`);
        }
        await writeStatus();
      }
      await writeStatus();
      await sleep(o.tickMs ?? 1000, o.signal);
    }
  } finally {
    rt.logger.info('daemon stopped');
    await lock.release();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
