import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { withLockWaiting } from '../state/lock.js';
import { DEFAULT_HOLD_MS } from './api.js';
import type { IncomingMigration, MigrationRecords } from './migrations.js';

/**
 * The time limit of a held copy. After `prepare` the peer holds a restored,
 * stopped copy until the source commits or aborts; if neither comes by
 * `holdUntil` (the source's abort could not reach this host, its prepare reply
 * was lost), the peer aborts the migration by itself (reason 'expired'),
 * removing the copy and everything it holds. A commit that comes later is
 * refused (EMIGRATION_ABORTED), and the source, which never kills its copy
 * before the peer confirms a commit, runs its copy again.
 *
 * The peer does not ask the source first: it usually has no way to reach it
 * (no hosts entry, no key), and it does not need one, since a source that
 * decided is told so at its next commit attempt.
 *
 * Commit, abort and the expiry serialize on the container's lock, so a commit
 * and the expiry cannot interleave: one wins, the other sees its outcome.
 */

const POLL_MS = 1000;
/** how long commit, abort or the expiry wait for one another */
export const MIGRATION_LOCK_WAIT_MS = 30_000;

/** Pure: when a copy prepared at `preparedAt` stops being held. */
export function holdUntil(preparedAt: Date, holdMs: number | undefined): string {
  return new Date(preparedAt.getTime() + (holdMs ?? DEFAULT_HOLD_MS)).toISOString();
}

/** Pure: whether the migration is a held copy past its limit. */
export function holdExpired(m: Pick<IncomingMigration, 'phase' | 'holdUntil'>, now: Date): boolean {
  return m.phase === 'prepared' && m.holdUntil !== undefined && now.getTime() >= Date.parse(m.holdUntil);
}

/** Pure: how long to sleep before the limit (0: now), or undefined when nothing is held any more. */
export function holdRemainingMs(m: Pick<IncomingMigration, 'phase' | 'holdUntil'> | undefined, now: Date): number | undefined {
  if (!m || m.phase !== 'prepared' || m.holdUntil === undefined) return undefined;
  return Math.max(0, Date.parse(m.holdUntil) - now.getTime());
}

/** The refusal of a commit that comes after the migration was aborted here. */
export function abortedError(m: Pick<IncomingMigration, 'id' | 'reason'>): TsmError {
  const why = m.reason === 'expired' ? 'its held copy expired before the source decided' : 'the source aborted it';
  return new TsmError('EMIGRATION_ABORTED', `migration ${m.id} was aborted on the peer (${why})`, {
    fix: 'the container runs on the source again; move it again',
  });
}

/** fn under the container's lock on this host, waiting for a commit, abort or expiry under way. */
export function withMigrationLock<T>(rt: Runtime, name: string, fn: () => Promise<T>): Promise<T> {
  return withLockWaiting(rt.store.lockDir(name), `container ${name}`, MIGRATION_LOCK_WAIT_MS, fn);
}

/**
 * Abort the migration if it is a held copy past its limit (under the lock, on
 * the record as it is then). `abort` removes the copy (LocalAgent's abort). Returns whether it did.
 */
export async function expireIfDue(
  rt: Runtime,
  records: MigrationRecords,
  id: string,
  abort: (m: IncomingMigration, reason: 'expired') => Promise<void>,
  now: () => Date = () => new Date(),
): Promise<boolean> {
  const first = await records.get(id);
  if (!first || !holdExpired(first, now())) return false;
  return withMigrationLock(rt, first.name, async () => {
    const m = await records.get(id);
    if (!m || !holdExpired(m, now())) return false;
    await abort(m, 'expired');
    return true;
  });
}

/**
 * The hold guard (`tsmigrate guard-hold ID`, detached from the agent that
 * prepared): sleeps until the limit, then expires the copy if it is still
 * held. Returns what became of the migration.
 */
export async function guardHold(
  rt: Runtime,
  records: MigrationRecords,
  id: string,
  abort: (m: IncomingMigration, reason: 'expired') => Promise<void>,
  o: { sleep?: (ms: number) => Promise<void>; log?: (msg: string) => void } = {},
): Promise<string> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (;;) {
    const m = await records.get(id);
    const wait = holdRemainingMs(m, new Date());
    if (wait === undefined) return m?.phase ?? 'unknown';
    // looked at every second: a decision ends the guard at once, a clock step is noticed
    if (wait > 0) {
      await sleep(Math.min(wait, POLL_MS));
      continue;
    }
    const failed = await expireIfDue(rt, records, id, abort).then(() => undefined, (e: Error) => e);
    if (failed) {
      o.log?.(`could not expire migration ${id} yet: ${failed.message}`);
      await sleep(1000);
    }
  }
}

/** Start a hold guard: detached (its own session, no terminal), its stderr to `logFile`. */
export function spawnHoldGuard(argv: readonly string[], logFile: string): void {
  const [file, ...args] = argv;
  if (!file) return;
  const log = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', 'ignore', log] });
    child.on('error', () => undefined);
    child.unref();
  } finally {
    closeSync(log);
  }
}
