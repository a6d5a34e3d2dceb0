/**
 * Intervals for `--every`: a compact duration such as `30s`, `15m`, `2h`,
 * `1d` or a compound such as `1h30m`. Pure: no I/O, no clock.
 */
import { TsmError } from '../errors/errors.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Smallest interval accepted by `--every`. */
export const MIN_INTERVAL_MS = SECOND;
/** Largest interval accepted by `--every` (366 days). */
export const MAX_INTERVAL_MS = 366 * DAY;

/** Units, largest first: a compound must use them in this order, each at most once. */
const UNITS: ReadonlyArray<readonly [unit: string, ms: number]> = [
  ['d', DAY],
  ['h', HOUR],
  ['m', MINUTE],
  ['s', SECOND],
];

const FIX = 'use a whole number and a unit s, m, h or d, e.g. 15m or 1h30m (between 1s and 366d)';

/** Quote user input for a one-line message (JSON escapes newlines; long input is cut). */
function shown(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}

function invalid(text: string, problem: string): TsmError {
  return new TsmError('EINVAL_ARG', `invalid --every ${shown(text)}: ${problem}`, { fix: FIX });
}

/**
 * Parse an `--every` interval into milliseconds.
 *
 * Accepts one or more `<integer><unit>` parts with units `d`, `h`, `m`, `s`
 * in decreasing order, each unit at most once (`1d12h`, `1h30m`, `90s`).
 * Surrounding white space is ignored; nothing else is (no spaces inside, no
 * fractions, no signs, no upper-case units). The result must lie between 1s
 * and 366d inclusive.
 *
 * @throws TsmError EINVAL_ARG naming `--every` and the problem.
 */
export function parseInterval(text: string): number {
  const s = String(text).trim();
  if (s === '') throw invalid(String(text), 'the interval is empty');
  const part = /(\d+)([a-zA-Z]*)/y;
  let total = 0;
  let lastUnit = -1;
  let pos = 0;
  while (pos < s.length) {
    part.lastIndex = pos;
    const m = part.exec(s);
    if (!m) {
      const ch = s[pos] ?? '';
      if (ch === '.' || ch === ',') throw invalid(s, 'use whole numbers only');
      throw invalid(s, `unexpected ${JSON.stringify(ch)} at position ${pos + 1}`);
    }
    const digits = m[1] ?? '';
    const unit = m[2] ?? '';
    if (unit === '') {
      if (s[part.lastIndex] === '.' || s[part.lastIndex] === ',') throw invalid(s, 'use whole numbers only');
      throw invalid(s, `"${digits}" has no unit`);
    }
    const idx = UNITS.findIndex(([u]) => u === unit);
    if (idx < 0) throw invalid(s, `unknown unit "${unit}"`);
    if (idx <= lastUnit) throw invalid(s, 'give each unit at most once, largest first (d, h, m, s)');
    lastUnit = idx;
    const n = Number(digits);
    const ms = (UNITS[idx] as readonly [string, number])[1];
    total += n * ms;
    // Guard early so absurdly long digit strings cannot lose precision.
    if (!Number.isSafeInteger(total) || total > MAX_INTERVAL_MS) throw invalid(s, 'the interval is longer than 366d');
    pos = part.lastIndex;
  }
  if (total < MIN_INTERVAL_MS) throw invalid(s, 'the interval is shorter than 1s');
  return total;
}

/**
 * Format milliseconds compactly, largest unit first, omitting zero parts:
 * 5400000 → `1h30m`, 86400000 → `1d`, 0 → `0s`. Sub-second remainders are
 * dropped (so the output always parses back with {@link parseInterval} when
 * the input is a whole number of seconds in range).
 *
 * @throws TsmError EINVAL_ARG when `ms` is negative or not finite.
 */
export function formatInterval(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new TsmError('EINVAL_ARG', `cannot format interval ${String(ms)}`, { fix: 'pass a non-negative number of milliseconds' });
  }
  let rest = Math.floor(ms / SECOND) * SECOND;
  let out = '';
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out === '' ? '0s' : out;
}
