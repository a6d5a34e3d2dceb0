import { TsmError } from '../errors/errors.js';
import { fmtMs } from './plan.js';

/**
 * The downtime bound while the container is frozen: a signal that aborts the
 * frozen phase early enough that the rollback (waiting for CRIU to end,
 * bringing the link up, thawing) still fits in the bound. It also follows the
 * caller's own signal (an interrupt).
 */
export interface FrozenBudget {
  readonly signal: AbortSignal;
  expired(): boolean;
  stop(): void;
}

/** What the rollback is left of the bound: a tenth of it, at most a second. */
export function rollbackReserveMs(maxMs: number): number {
  return Math.min(1000, Math.round(maxMs / 10));
}

export function startFrozenBudget(maxMs: number | null, outer: AbortSignal | undefined, phase: () => string): FrozenBudget {
  const own = new AbortController();
  const signal = outer ? AbortSignal.any([outer, own.signal]) : own.signal;
  let fired = false;
  const timer =
    maxMs === null
      ? undefined
      : setTimeout(() => {
          fired = true;
          own.abort(
            new TsmError('EDOWNTIME', `the move ran over its --max-downtime of ${fmtMs(maxMs)} while frozen (in ${phase()}): it was rolled back and the container runs on here`, {
              fix: 'allow more with --max-downtime, or move over a faster link or when the container holds less memory',
            }),
          );
        }, Math.max(0, maxMs - rollbackReserveMs(maxMs)));
  return {
    signal,
    expired: () => fired,
    stop: () => {
      if (timer) clearTimeout(timer);
    },
  };
}
