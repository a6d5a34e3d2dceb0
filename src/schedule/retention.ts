/**
 * Restic-style retention: decide which checkpoints to keep and which to
 * prune. Pure: no I/O, no clock.
 *
 * Snapshots are walked newest first (ties: the larger id counts as newer).
 * - keep-last N keeps the N newest.
 * - keep-hourly / keep-daily / keep-weekly N keep the newest snapshot of each
 *   distinct hour / calendar day / ISO week, until N such buckets are kept.
 * Each rule counts on its own, so a snapshot may be kept for several reasons.
 * Everything not kept is pruned.
 */
import { TsmError } from '../errors/errors.js';

/** How many checkpoints to keep per rule; 0 = the rule is not used. */
export interface RetentionPolicy {
  keepLast: number;
  keepHourly: number;
  keepDaily: number;
  keepWeekly: number;
}

/** Why a snapshot is kept, one per rule that kept it (in this order). */
export type RetentionReason = 'last' | 'hourly' | 'daily' | 'weekly';

export interface RetentionPlan {
  /** Kept snapshots, newest first, each with the rules that kept it. */
  keep: Array<{ id: string; reasons: RetentionReason[] }>;
  /** Ids of the snapshots to delete, newest first. */
  prune: string[];
}

/** Largest count accepted per rule. */
export const MAX_KEEP = 10000;

const POLICY_FLAGS: ReadonlyArray<readonly [keyof RetentionPolicy, string]> = [
  ['keepLast', '--keep-last'],
  ['keepHourly', '--keep-hourly'],
  ['keepDaily', '--keep-daily'],
  ['keepWeekly', '--keep-weekly'],
];

/**
 * Check a policy: every count a whole number 0..10000, at least one above 0.
 *
 * @throws TsmError EINVAL_ARG naming the offending flag, or saying that the
 *   policy keeps nothing.
 */
export function validatePolicy(p: RetentionPolicy): void {
  for (const [key, flag] of POLICY_FLAGS) {
    const n: unknown = p[key];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_KEEP) {
      throw new TsmError('EINVAL_ARG', `invalid ${flag} ${JSON.stringify(String(n).slice(0, 40))}: use a whole number from 0 to ${MAX_KEEP}`, {
        fix: `give ${flag} N with N between 0 and ${MAX_KEEP}`,
      });
    }
  }
  if (POLICY_FLAGS.every(([key]) => p[key] === 0)) {
    throw new TsmError('EINVAL_ARG', 'a retention policy must keep at least one checkpoint: give --keep-last N', {
      fix: 'give --keep-last N (or --keep-hourly, --keep-daily, --keep-weekly) with N of at least 1',
    });
  }
}

interface Cal {
  y: number;
  m: number; // 1-12
  d: number;
  h: number;
}

function calOf(ms: number, tz: 'local' | 'utc'): Cal {
  const t = new Date(ms);
  return tz === 'utc'
    ? { y: t.getUTCFullYear(), m: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours() }
    : { y: t.getFullYear(), m: t.getMonth() + 1, d: t.getDate(), h: t.getHours() };
}

/** ISO 8601 week of a calendar date, as "YYYY-Www" (the ISO week-year may differ from y). */
export function isoWeekKey(y: number, m: number, d: number): string {
  const day = Date.UTC(y, m - 1, d);
  const isoDow = new Date(day).getUTCDay() || 7; // Monday 1 .. Sunday 7
  const thursday = new Date(day + (4 - isoDow) * 86_400_000); // same ISO week, decides its year
  const wy = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(wy, 0, 1)) / (7 * 86_400_000)) + 1;
  return `${wy}-W${String(week).padStart(2, '0')}`;
}

const BUCKETS: ReadonlyArray<readonly [RetentionReason, keyof RetentionPolicy, (c: Cal) => string]> = [
  ['hourly', 'keepHourly', (c) => `${c.y}-${c.m}-${c.d}T${c.h}`],
  ['daily', 'keepDaily', (c) => `${c.y}-${c.m}-${c.d}`],
  ['weekly', 'keepWeekly', (c) => isoWeekKey(c.y, c.m, c.d)],
];

/**
 * Plan which snapshots to keep and which to prune under `policy`, reading
 * hours, days and weeks in `tz`.
 *
 * @throws TsmError EINVAL_ARG if the policy is invalid or keeps nothing
 *   (see {@link validatePolicy}), if a snapshot's `createdAt` is not a valid
 *   date, or if an id appears twice.
 */
export function planRetention(
  snapshots: ReadonlyArray<{ id: string; createdAt: string }>,
  policy: RetentionPolicy,
  tz: 'local' | 'utc' = 'local',
): RetentionPlan {
  validatePolicy(policy);
  const seen = new Set<string>();
  const items = snapshots.map(({ id, createdAt }) => {
    if (seen.has(id)) {
      throw new TsmError('EINVAL_ARG', `checkpoint ${JSON.stringify(id)} is listed twice`, { fix: 'pass each checkpoint once' });
    }
    seen.add(id);
    const ms = Date.parse(createdAt);
    if (!Number.isFinite(ms)) {
      throw new TsmError('EINVAL_ARG', `checkpoint ${JSON.stringify(id)} has an invalid creation time ${JSON.stringify(String(createdAt).slice(0, 40))}`, {
        fix: 'use an ISO 8601 time such as 2024-05-01T12:00:00Z',
      });
    }
    return { id, ms };
  });
  items.sort((a, b) => b.ms - a.ms || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));

  let lastLeft = policy.keepLast;
  const left = BUCKETS.map(([, key]) => policy[key]);
  const lastBucket: Array<string | undefined> = BUCKETS.map(() => undefined);
  const plan: RetentionPlan = { keep: [], prune: [] };
  for (const { id, ms } of items) {
    const reasons: RetentionReason[] = [];
    if (lastLeft > 0) {
      lastLeft--;
      reasons.push('last');
    }
    const cal = calOf(ms, tz);
    BUCKETS.forEach(([reason, , keyOf], i) => {
      if ((left[i] ?? 0) <= 0) return;
      const key = keyOf(cal);
      if (key === lastBucket[i]) return; // an older snapshot of a bucket already kept
      lastBucket[i] = key;
      left[i] = (left[i] ?? 0) - 1;
      reasons.push(reason);
    });
    if (reasons.length > 0) plan.keep.push({ id, reasons });
    else plan.prune.push(id);
  }
  return plan;
}
