/**
 * When is a schedule due? Pure: the current time is always a parameter.
 *
 * The next due time is computed from the LAST RUN, not from a fixed grid of
 * past slots, so missed runs are caught up once: a daemon that was down for
 * ten periods runs the job once when it comes back, and the run it records
 * then pushes the next due time into the future.
 */
import { nextCronTime, type CronSpec, type CronTz } from './cron.js';

/** How a schedule fires: a fixed interval, or a cron expression. */
export type ScheduleTiming = { kind: 'every'; everyMs: number } | { kind: 'cron'; spec: CronSpec };

/**
 * The time a schedule is next due.
 *
 * - `every`: `lastRun + everyMs`; a schedule that never ran is due at
 *   `createdAt` (the first run happens at once).
 * - `cron`: the first matching minute strictly after `lastRun`; a schedule
 *   that never ran waits for the first matching minute strictly after
 *   `createdAt` (creating a nightly schedule at noon does not run it at noon).
 *
 * @param tz clock the cron expression is read in (ignored for `every`).
 */
export function nextDue(t: ScheduleTiming, lastRun: Date | null, createdAt: Date, tz: CronTz = 'local'): Date {
  if (t.kind === 'every') {
    return lastRun === null ? new Date(createdAt.getTime()) : new Date(lastRun.getTime() + t.everyMs);
  }
  return nextCronTime(t.spec, lastRun ?? createdAt, tz);
}

/** True when the schedule's next due time is at or before `now`. */
export function isDue(t: ScheduleTiming, lastRun: Date | null, createdAt: Date, now: Date, tz: CronTz = 'local'): boolean {
  return nextDue(t, lastRun, createdAt, tz).getTime() <= now.getTime();
}
