import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cronMatches, nextCronTime, parseCron } from '../../../src/schedule/cron.js';
import { TsmError } from '../../../src/errors/errors.js';

const range = (a: number, b: number, step = 1): number[] => {
  const out: number[] = [];
  for (let v = a; v <= b; v += step) out.push(v);
  return out;
};

/** Next match after an ISO time, in UTC, as an ISO string. */
const next = (expr: string, after: string): string => nextCronTime(parseCron(expr), new Date(after), 'utc').toISOString();

/** The first n matches after an ISO time, in UTC. */
const nextN = (expr: string, after: string, n: number): string[] => {
  const spec = parseCron(expr);
  const out: string[] = [];
  let t = new Date(after);
  for (let i = 0; i < n; i++) {
    t = nextCronTime(spec, t, 'utc');
    out.push(t.toISOString());
  }
  return out;
};

test('parseCron expands fields', () => {
  const cases: Array<[string, Partial<Record<'minutes' | 'hours' | 'daysOfMonth' | 'months' | 'daysOfWeek', number[]>>]> = [
    ['* * * * *', { minutes: range(0, 59), hours: range(0, 23), daysOfMonth: range(1, 31), months: range(1, 12), daysOfWeek: range(0, 6) }],
    ['*/15 * * * *', { minutes: [0, 15, 30, 45] }],
    ['10-50/5 * * * *', { minutes: range(10, 50, 5) }],
    ['5/20 * * * *', { minutes: [5, 25, 45] }],
    ['1,2,3-5,4 * * * *', { minutes: [1, 2, 3, 4, 5] }],
    ['0 0-23/6 * * *', { hours: [0, 6, 12, 18] }],
    ['0 0 1,15 * *', { daysOfMonth: [1, 15] }],
    ['0 0 * jan,MAR,Dec *', { months: [1, 3, 12] }],
    ['0 0 * Jun-aug *', { months: [6, 7, 8] }],
    ['0 0 * */3 *', { months: [1, 4, 7, 10] }],
    ['0 0 * * mon-FRI', { daysOfWeek: [1, 2, 3, 4, 5] }],
    ['0 0 * * sun,sat', { daysOfWeek: [0, 6] }],
    ['0 0 * * 7', { daysOfWeek: [0] }],
    ['0 0 * * 5-7', { daysOfWeek: [0, 5, 6] }],
    ['0 0 * * 0,7', { daysOfWeek: [0] }],
    ['0 0 * * */2', { daysOfWeek: [0, 2, 4, 6] }],
    ['0 0 * * 1/2', { daysOfWeek: [1, 3, 5] }],
    ['0 0 * * sun-sat/3', { daysOfWeek: [0, 3, 6] }],
    ['*/60 * * * *', { minutes: [0] }],
  ];
  for (const [expr, want] of cases) {
    const spec = parseCron(expr);
    for (const [k, v] of Object.entries(want)) assert.deepEqual(spec[k as keyof typeof want], v, `${expr} ${k}`);
  }
});

test('parseCron shortcuts', () => {
  const cases: Array<[string, string]> = [
    ['@hourly', '0 * * * *'],
    ['@daily', '0 0 * * *'],
    ['@midnight', '0 0 * * *'],
    ['@weekly', '0 0 * * 0'],
    ['@monthly', '0 0 1 * *'],
    ['@yearly', '0 0 1 1 *'],
    ['@annually', '0 0 1 1 *'],
    ['@DAILY', '0 0 * * *'],
  ];
  for (const [short, long] of cases) {
    const a = parseCron(short);
    const b = parseCron(long);
    assert.deepEqual({ ...a, source: '' }, { ...b, source: '' }, short);
    assert.equal(a.source, short);
  }
});

test('parseCron records DOM/DOW star flags the Vixie way', () => {
  assert.deepEqual(pick(parseCron('0 0 * * *')), [true, true]);
  assert.deepEqual(pick(parseCron('0 0 1 * mon')), [false, false]);
  assert.deepEqual(pick(parseCron('0 0 */2 * mon')), [true, false]);
  assert.deepEqual(pick(parseCron('0 0 1 * *')), [false, true]);
  function pick(s: { domStar: boolean; dowStar: boolean }): [boolean, boolean] {
    return [s.domStar, s.dowStar];
  }
});

test('parseCron rejects bad fields, naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['* * * *', /expected 5 fields .* got 4/],
    ['* * * * * *', /expected 5 fields .* got 6/],
    ['@reboot', /unknown shortcut "@reboot"/],
    ['@every 5m', /unknown shortcut/],
    ['60 * * * *', /minute field "60": 60 is out of range 0-59/],
    ['-1 * * * *', /minute field "-1": "-1" is missing a value/],
    ['a * * * *', /minute field "a": "a" is not a number/],
    ['1.5 * * * *', /minute field "1.5": "1.5" is not a number/],
    ['1,,2 * * * *', /minute field "1,,2": empty list item/],
    ['*/0 * * * *', /minute field "\*\/0": step 0 is out of range 1-60/],
    ['*/61 * * * *', /minute field "\*\/61": step 61 is out of range/],
    ['*/x * * * *', /minute field "\*\/x": step "x" is not a whole number/],
    ['1/2/3 * * * *', /minute field "1\/2\/3": .*more than one "\/"/],
    ['* 24 * * *', /hour field "24": 24 is out of range 0-23/],
    ['* 5-2 * * *', /hour field "5-2": range "5-2" runs backwards/],
    ['* 1-2-3 * * *', /hour field "1-2-3": .*not a range/],
    ['* 1- * * *', /hour field "1-": .*missing the end/],
    ['* * 0 * *', /day-of-month field "0": 0 is out of range 1-31/],
    ['* * 32 * *', /day-of-month field "32": 32 is out of range 1-31/],
    ['* * mon * *', /day-of-month field "mon": "mon" is not a number$/],
    ['* * * 13 *', /month field "13": 13 is out of range 1-12/],
    ['* * * 0 *', /month field "0": 0 is out of range 1-12/],
    ['* * * foo *', /month field "foo": unknown name "foo" \(use jan-dec\)/],
    ['* * * january *', /month field "january": "january" is not a number or a name/],
    ['* * * * 8', /day-of-week field "8": 8 is out of range 0-7/],
    ['* * * * mon-xyz', /day-of-week field "mon-xyz": unknown name "xyz" \(use sun-sat\)/],
    ['* * * * fri-mon', /day-of-week field "fri-mon": range "fri-mon" runs backwards/],
    ['* * * * jan', /day-of-week field "jan": unknown name/],
  ];
  for (const [expr, re] of cases) {
    assert.throws(
      () => parseCron(expr),
      (e: unknown) => {
        assert.ok(e instanceof TsmError, expr);
        assert.equal(e.code, 'EINVAL_ARG');
        assert.match(e.message, /^invalid --cron /, expr);
        assert.match(e.message, re, expr);
        assert.doesNotMatch(e.message, /\n/);
        assert.ok(e.fix);
        return true;
      },
      expr,
    );
  }
});

test('parseCron rejects expressions that never match', () => {
  for (const expr of ['0 0 30 2 *', '0 0 31 2 *', '0 0 31 apr,jun,sep,nov *', '0 0 30,31 feb *']) {
    assert.throws(
      () => parseCron(expr),
      (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG' && /never matches/.test(e.message) && /--cron/.test(e.message),
      expr,
    );
  }
  // With a restricted day-of-week the OR rule makes these match every Monday.
  assert.equal(next('0 0 30 2 mon', '2024-01-01T00:00:00Z'), '2024-02-05T00:00:00.000Z');
  // And a day that exists in one listed month is enough.
  assert.equal(next('0 0 31 2,3 *', '2024-01-01T00:00:00Z'), '2024-03-31T00:00:00.000Z');
});

test('nextCronTime basics: strictly after, minute boundaries', () => {
  const cases: Array<[string, string, string]> = [
    ['* * * * *', '2024-05-01T12:00:00.000Z', '2024-05-01T12:01:00.000Z'],
    ['* * * * *', '2024-05-01T12:00:59.999Z', '2024-05-01T12:01:00.000Z'],
    ['* * * * *', '2024-05-01T11:59:30.000Z', '2024-05-01T12:00:00.000Z'],
    ['*/15 * * * *', '2024-05-01T12:00:00.000Z', '2024-05-01T12:15:00.000Z'],
    ['*/15 * * * *', '2024-05-01T12:14:59.000Z', '2024-05-01T12:15:00.000Z'],
    ['*/15 * * * *', '2024-05-01T12:50:00.000Z', '2024-05-01T13:00:00.000Z'],
    ['30 2 * * *', '2024-05-01T02:30:00.000Z', '2024-05-02T02:30:00.000Z'],
    ['30 2 * * *', '2024-05-01T02:29:00.000Z', '2024-05-01T02:30:00.000Z'],
    ['10-50/20 9-17 * * *', '2024-05-01T17:50:00.000Z', '2024-05-02T09:10:00.000Z'],
    ['@hourly', '2024-05-01T12:00:00.000Z', '2024-05-01T13:00:00.000Z'],
    ['@daily', '2024-05-01T12:00:00.000Z', '2024-05-02T00:00:00.000Z'],
    ['@weekly', '2024-05-01T12:00:00.000Z', '2024-05-05T00:00:00.000Z'], // 2024-05-05 is a Sunday
    ['@monthly', '2024-05-01T00:00:00.000Z', '2024-06-01T00:00:00.000Z'],
    ['0 0 31 * *', '2024-04-01T00:00:00.000Z', '2024-05-31T00:00:00.000Z'], // skips April (30 days)
    ['0 12 * * mon-fri', '2024-05-03T12:00:00.000Z', '2024-05-06T12:00:00.000Z'], // Fri → Mon
    ['0 12 * * 7', '2024-05-01T00:00:00.000Z', '2024-05-05T12:00:00.000Z'],
    ['0 0 * jul *', '2024-05-01T00:00:00.000Z', '2024-07-01T00:00:00.000Z'],
  ];
  for (const [expr, after, want] of cases) assert.equal(next(expr, after), want, `${expr} after ${after}`);
});

test('nextCronTime: year rollover', () => {
  assert.equal(next('@yearly', '2024-06-01T00:00:00Z'), '2025-01-01T00:00:00.000Z');
  assert.equal(next('* * * * *', '2024-12-31T23:59:00Z'), '2025-01-01T00:00:00.000Z');
  assert.equal(next('0 0 * dec *', '2024-12-31T00:00:00Z'), '2025-12-01T00:00:00.000Z');
  assert.equal(next('59 23 31 12 *', '2024-12-31T23:59:00Z'), '2025-12-31T23:59:00.000Z');
  // dom is *, so only Mondays count: 2025-01-06 is the first Monday of January.
  assert.equal(next('0 9 * jan mon', '2024-12-15T00:00:00Z'), '2025-01-06T09:00:00.000Z');
});

test('nextCronTime: leap day', () => {
  assert.deepEqual(nextN('0 0 29 2 *', '2023-01-01T00:00:00Z', 3), [
    '2024-02-29T00:00:00.000Z',
    '2028-02-29T00:00:00.000Z',
    '2032-02-29T00:00:00.000Z',
  ]);
  // 2100 is not a leap year.
  assert.equal(next('0 0 29 2 *', '2096-03-01T00:00:00Z'), '2104-02-29T00:00:00.000Z');
  // Feb 29 that is also a Sunday (AND rule: dow starts with *): 2004, 2032.
  assert.equal(next('0 0 29 2 */7', '2005-01-01T00:00:00Z'), '2032-02-29T00:00:00.000Z');
});

test('nextCronTime: DOM/DOW OR rule when both are restricted', () => {
  // 1st and 15th of the month, or any Friday.
  assert.deepEqual(nextN('0 0 1,15 * fri', '2024-05-01T00:00:00Z', 5), [
    '2024-05-03T00:00:00.000Z', // Friday
    '2024-05-10T00:00:00.000Z', // Friday
    '2024-05-15T00:00:00.000Z', // 15th (Wednesday)
    '2024-05-17T00:00:00.000Z', // Friday
    '2024-05-24T00:00:00.000Z', // Friday
  ]);
  // When dom is * only the day-of-week counts.
  assert.deepEqual(nextN('0 0 * * fri', '2024-05-01T00:00:00Z', 2), ['2024-05-03T00:00:00.000Z', '2024-05-10T00:00:00.000Z']);
  // When dow is * only the day-of-month counts.
  assert.deepEqual(nextN('0 0 13 * *', '2024-05-01T00:00:00Z', 2), ['2024-05-13T00:00:00.000Z', '2024-06-13T00:00:00.000Z']);
  // Vixie: a field starting with * is not "restricted", so */2 AND fri.
  assert.deepEqual(nextN('0 0 */2 * fri', '2024-05-01T00:00:00Z', 3), [
    '2024-05-03T00:00:00.000Z',
    '2024-05-17T00:00:00.000Z',
    '2024-05-31T00:00:00.000Z',
  ]);
  // "13 * fri" is NOT Friday the 13th: it is the 13th or any Friday.
  assert.equal(next('0 0 13 * fri', '2024-05-01T00:00:00Z'), '2024-05-03T00:00:00.000Z');
});

test('cronMatches agrees with nextCronTime', () => {
  const spec = parseCron('*/10 8-18 1,15 * mon');
  assert.equal(cronMatches(spec, new Date('2024-05-06T08:10:00Z'), 'utc'), true); // Monday
  assert.equal(cronMatches(spec, new Date('2024-05-15T18:50:59Z'), 'utc'), true); // 15th
  assert.equal(cronMatches(spec, new Date('2024-05-07T08:10:00Z'), 'utc'), false); // Tuesday 7th
  assert.equal(cronMatches(spec, new Date('2024-05-06T08:11:00Z'), 'utc'), false);
  assert.equal(cronMatches(spec, new Date('2024-05-06T19:00:00Z'), 'utc'), false);
  let t = new Date('2024-01-01T00:00:00Z');
  for (let i = 0; i < 200; i++) {
    const n = nextCronTime(spec, t, 'utc');
    assert.ok(n > t);
    assert.equal(n.getTime() % 60_000, 0);
    assert.ok(cronMatches(spec, n, 'utc'));
    t = n;
  }
});

test('nextCronTime rejects an invalid date', () => {
  assert.throws(() => nextCronTime(parseCron('* * * * *'), new Date(Number.NaN), 'utc'), (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG');
});

test('nextCronTime terminates quickly and never-matching hand-built specs throw', () => {
  const spec = { ...parseCron('0 0 1 2 *'), daysOfMonth: [30] };
  assert.throws(() => nextCronTime(spec, new Date('2024-01-01T00:00:00Z'), 'utc'), /never matches/);
  const t0 = performance.now();
  for (const expr of ['0 0 29 2 */7', '59 23 31 12 *', '0 0 29 2 *', '* * * * *']) {
    for (let i = 0; i < 20; i++) nextCronTime(parseCron(expr), new Date(Date.UTC(2000 + i, 2, 1)), 'utc');
  }
  assert.ok(performance.now() - t0 < 1000);
});

test('nextCronTime in local time returns a matching local minute', () => {
  const spec = parseCron('30 2 * * *');
  const n = nextCronTime(spec, new Date(2024, 4, 1, 12, 0), 'local');
  assert.equal(n.getHours(), 2);
  assert.equal(n.getMinutes(), 30);
  assert.equal(n.getDate(), 2);
  assert.equal(n.getMonth(), 4);
});
