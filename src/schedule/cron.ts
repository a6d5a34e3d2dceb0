/**
 * Standard 5-field cron expressions for `--cron`, with Vixie cron semantics.
 * Pure: no I/O, no clock (the reference time is always a parameter).
 *
 *   minute hour day-of-month month day-of-week
 *
 * Each field is a comma list of `*`, `N`, `A-B`, each optionally followed
 * by a step `/S` (`A-B/S`; `N/S` means `N-max/S`; `*` with `/15` means
 * every 15th value). Months accept `jan`..`dec` and days of the
 * week `sun`..`sat` (case-insensitive); day-of-week 7 is Sunday like 0.
 * Shortcuts: `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
 * `@yearly`, `@annually`.
 */
import { TsmError } from '../errors/errors.js';

/** Which clock a cron expression is read in. */
export type CronTz = 'local' | 'utc';

/** A parsed cron expression. Value lists are sorted and duplicate-free. */
export interface CronSpec {
  /** The expression as given (trimmed). */
  readonly source: string;
  /** 0-59 */
  readonly minutes: readonly number[];
  /** 0-23 */
  readonly hours: readonly number[];
  /** 1-31 */
  readonly daysOfMonth: readonly number[];
  /** 1-12 */
  readonly months: readonly number[];
  /** 0-6, 0 = Sunday (a 7 in the expression is stored as 0) */
  readonly daysOfWeek: readonly number[];
  /**
   * True when the day-of-month field starts with `*` (Vixie's DOM_STAR).
   * When both day fields are restricted (neither starts with `*`), a day
   * matches if EITHER matches; otherwise both must match.
   */
  readonly domStar: boolean;
  /** True when the day-of-week field starts with `*` (Vixie's DOW_STAR). */
  readonly dowStar: boolean;
}

const SHORTCUTS: Readonly<Record<string, string>> = {
  '@hourly': '0 * * * *',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@weekly': '0 0 * * 0',
  '@monthly': '0 0 1 * *',
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
};

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldDef {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** What `*` expands to (day-of-week: 0-6, though 7 is accepted explicitly). */
  readonly starMax: number;
  /** Names for min, min+1, ... */
  readonly names?: readonly string[];
}

const FIELDS: readonly FieldDef[] = [
  { name: 'minute', min: 0, max: 59, starMax: 59 },
  { name: 'hour', min: 0, max: 23, starMax: 23 },
  { name: 'day-of-month', min: 1, max: 31, starMax: 31 },
  { name: 'month', min: 1, max: 12, starMax: 12, names: MONTH_NAMES },
  { name: 'day-of-week', min: 0, max: 7, starMax: 6, names: DAY_NAMES },
];

const FIX = 'use 5 fields "minute hour day-of-month month day-of-week" (e.g. "*/15 * * * *" or "30 2 * * mon-fri") or @hourly, @daily, @weekly, @monthly, @yearly';

/** Quote user input for a one-line message (JSON escapes newlines; long input is cut). */
function shown(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);
}

function invalid(expr: string, problem: string): TsmError {
  return new TsmError('EINVAL_ARG', `invalid --cron ${shown(expr)}: ${problem}`, { fix: FIX });
}

/** Parse one value: a decimal integer or (month/day-of-week) a 3-letter name. */
function parseValue(text: string, def: FieldDef, fail: (p: string) => never): number {
  let n: number;
  if (/^\d+$/.test(text)) {
    n = Number(text);
  } else if (def.names && /^[a-z]{3}$/i.test(text)) {
    const i = def.names.indexOf(text.toLowerCase());
    if (i < 0) fail(`unknown name "${text}" (use ${def.names[0]}-${def.names[def.names.length - 1]})`);
    n = def.min + i;
  } else {
    fail(`"${text}" is not a number${def.names ? ' or a name' : ''}`);
  }
  if (n < def.min || n > def.max) fail(`${n} is out of range ${def.min}-${def.max}`);
  return n;
}

/** Expand one field into its sorted set of values. */
function parseField(text: string, def: FieldDef, fail: (p: string) => never): number[] {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') fail('empty list item');
    const slash = item.split('/');
    if (slash.length > 2) fail(`"${item}" has more than one "/"`);
    const [range = '', stepText] = slash;
    let lo: number;
    let hi: number;
    if (range === '*') {
      lo = def.min;
      hi = def.starMax;
    } else {
      const dash = range.split('-');
      if (dash.length > 2) fail(`"${range}" is not a range A-B`);
      const [a = '', b] = dash;
      if (a === '') fail(`"${item}" is missing a value`);
      lo = parseValue(a, def, fail);
      if (b !== undefined) {
        if (b === '') fail(`"${range}" is missing the end of the range`);
        hi = parseValue(b, def, fail);
        if (hi < lo) fail(`range "${range}" runs backwards`);
      } else {
        // `N/S` runs to the end of the `*` range (cronie, Quartz); a plain `N` is just N.
        hi = stepText === undefined ? lo : Math.max(lo, def.starMax);
      }
    }
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) fail(`step "${stepText}" is not a whole number`);
      step = Number(stepText);
      const span = def.max - def.min + 1;
      if (step < 1 || step > span) fail(`step ${step} is out of range 1-${span}`);
    }
    for (let v = lo; v <= hi; v += step) values.add(def.name === 'day-of-week' && v === 7 ? 0 : v);
  }
  return [...values].sort((x, y) => x - y);
}

/** Days in month `m` (1-12) of year `y`. */
function daysInMonth(y: number, m: number): number {
  return new Date(Date.UTC(y, m, 0)).getUTCDate();
}

/** The most days month `m` (1-12) can ever have (February: 29). */
function maxDaysInMonth(m: number): number {
  return m === 2 ? 29 : daysInMonth(2001, m);
}

/**
 * Parse a cron expression or shortcut.
 *
 * @throws TsmError EINVAL_ARG mentioning `--cron`, naming the bad field,
 *   or saying "never matches" when no date can ever satisfy the
 *   day-of-month/month combination (e.g. `0 0 30 2 *`).
 */
export function parseCron(expr: string): CronSpec {
  const source = String(expr).trim();
  if (source === '') throw invalid(String(expr), 'the expression is empty');
  let body = source;
  if (source.startsWith('@')) {
    const expansion = SHORTCUTS[source.toLowerCase()];
    if (expansion === undefined) throw invalid(source, `unknown shortcut "${source}"`);
    body = expansion;
  }
  const parts = body.split(/\s+/);
  if (parts.length !== FIELDS.length) {
    throw invalid(source, `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`);
  }
  const sets = parts.map((text, i) => {
    const def = FIELDS[i] as FieldDef;
    const fail = (problem: string): never => {
      throw invalid(source, `${def.name} field "${text}": ${problem}`);
    };
    return parseField(text, def, fail);
  });
  const [minutes = [], hours = [], daysOfMonth = [], months = [], daysOfWeek = []] = sets;
  const spec: CronSpec = {
    source,
    minutes,
    hours,
    daysOfMonth,
    months,
    daysOfWeek,
    domStar: (parts[2] ?? '').startsWith('*'),
    dowStar: (parts[4] ?? '').startsWith('*'),
  };
  // When the day-of-week can widen the match (OR rule) any month has matching
  // days. Otherwise some listed day-of-month must exist in some listed month;
  // every existing date (Feb 29 included) falls on every weekday within the
  // 400-year Gregorian cycle, so this check is exact.
  const orRule = !spec.domStar && !spec.dowStar;
  if (!orRule && !months.some((m) => daysOfMonth.some((d) => d <= maxDaysInMonth(m)))) {
    throw invalid(source, 'never matches: no listed month has the listed day-of-month');
  }
  return spec;
}

/** Does calendar day (y, m 1-12, d) match the spec's month and day fields? */
function dayMatches(spec: CronSpec, y: number, m: number, d: number): boolean {
  if (!spec.months.includes(m)) return false;
  const domOk = spec.daysOfMonth.includes(d);
  const dowOk = spec.daysOfWeek.includes(new Date(Date.UTC(y, m - 1, d)).getUTCDay());
  return !spec.domStar && !spec.dowStar ? domOk || dowOk : domOk && dowOk;
}

interface Fields {
  y: number;
  m: number; // 1-12
  d: number;
  h: number;
  mi: number;
}

function fieldsOf(date: Date, tz: CronTz): Fields {
  return tz === 'utc'
    ? { y: date.getUTCFullYear(), m: date.getUTCMonth() + 1, d: date.getUTCDate(), h: date.getUTCHours(), mi: date.getUTCMinutes() }
    : { y: date.getFullYear(), m: date.getMonth() + 1, d: date.getDate(), h: date.getHours(), mi: date.getMinutes() };
}

function makeDate(f: Fields, tz: CronTz): Date {
  return tz === 'utc' ? new Date(Date.UTC(f.y, f.m - 1, f.d, f.h, f.mi)) : new Date(f.y, f.m - 1, f.d, f.h, f.mi);
}

/** Does the minute containing `date` match the spec (read in `tz`)? */
export function cronMatches(spec: CronSpec, date: Date, tz: CronTz = 'local'): boolean {
  const f = fieldsOf(date, tz);
  return spec.minutes.includes(f.mi) && spec.hours.includes(f.h) && dayMatches(spec, f.y, f.m, f.d);
}

/** Years searched before giving up: one full Gregorian cycle. */
const SEARCH_YEARS = 400;

/**
 * The first minute boundary strictly after `after` that matches `spec`,
 * reading wall-clock fields in `tz`.
 *
 * Walks calendar days, skipping whole months that are not listed and days
 * that do not match, and only then tries the listed hours and minutes, so
 * even rare expressions (Feb 29 on a Sunday) cost a few thousand steps.
 * In local time, wall-clock minutes that do not exist (skipped by a DST
 * change) are skipped, and a repeated hour runs once (its first occurrence).
 *
 * @throws TsmError EINVAL_ARG if `after` is not a valid date, or "never
 *   matches" if nothing matches within 400 years (which {@link parseCron}
 *   already rules out for the specs it returns).
 */
export function nextCronTime(spec: CronSpec, after: Date, tz: CronTz = 'local'): Date {
  const t = after.getTime();
  if (!Number.isFinite(t)) {
    throw new TsmError('EINVAL_ARG', 'cannot compute the next cron time after an invalid date', { fix: 'pass a valid Date' });
  }
  const start = Math.floor(t / 60_000) * 60_000 + 60_000;
  const s = fieldsOf(new Date(start), tz);
  let { y, m, d } = s;
  while (y <= s.y + SEARCH_YEARS) {
    if (!spec.months.includes(m)) {
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
      continue;
    }
    if (dayMatches(spec, y, m, d)) {
      for (const h of spec.hours) {
        for (const mi of spec.minutes) {
          const want: Fields = { y, m, d, h, mi };
          const cand = makeDate(want, tz);
          if (cand.getTime() < start) continue;
          const got = fieldsOf(cand, tz);
          // A local time inside a DST gap is normalised to another hour: skip it.
          if (got.y !== y || got.m !== m || got.d !== d || got.h !== h || got.mi !== mi) continue;
          return cand;
        }
      }
    }
    if (++d > daysInMonth(y, m)) {
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
    }
  }
  throw invalid(spec.source, `never matches within ${SEARCH_YEARS} years`);
}
