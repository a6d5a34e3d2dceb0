import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isoWeekKey, planRetention, validatePolicy, type RetentionPolicy } from '../../../src/schedule/retention.js';
import { TsmError } from '../../../src/errors/errors.js';

const policy = (p: Partial<RetentionPolicy>): RetentionPolicy => ({ keepLast: 0, keepHourly: 0, keepDaily: 0, keepWeekly: 0, ...p });
const snap = (id: string, createdAt: string) => ({ id, createdAt });

/** Kept ids with reasons as "id:reason+reason", for compact assertions. */
const kept = (plan: ReturnType<typeof planRetention>): string[] => plan.keep.map((k) => `${k.id}:${k.reasons.join('+')}`);

test('empty input keeps and prunes nothing', () => {
  assert.deepEqual(planRetention([], policy({ keepLast: 3 }), 'utc'), { keep: [], prune: [] });
});

test('keep-last only keeps the N newest, whatever the input order', () => {
  const snaps = [
    snap('c', '2024-05-01T03:00:00Z'),
    snap('a', '2024-05-01T01:00:00Z'),
    snap('e', '2024-05-01T05:00:00Z'),
    snap('b', '2024-05-01T02:00:00Z'),
    snap('d', '2024-05-01T04:00:00Z'),
  ];
  const cases: Array<[number, string[], string[]]> = [
    [1, ['e:last'], ['d', 'c', 'b', 'a']],
    [2, ['e:last', 'd:last'], ['c', 'b', 'a']],
    [5, ['e:last', 'd:last', 'c:last', 'b:last', 'a:last'], []],
    [10, ['e:last', 'd:last', 'c:last', 'b:last', 'a:last'], []],
  ];
  for (const [n, keep, prune] of cases) {
    const plan = planRetention(snaps, policy({ keepLast: n }), 'utc');
    assert.deepEqual(kept(plan), keep, `keep-last ${n}`);
    assert.deepEqual(plan.prune, prune, `keep-last ${n}`);
  }
});

test('keep-hourly keeps the newest of each hour', () => {
  const snaps = [
    snap('h10a', '2024-05-01T10:05:00Z'),
    snap('h10b', '2024-05-01T10:45:00Z'),
    snap('h11a', '2024-05-01T11:00:00Z'),
    snap('h11b', '2024-05-01T11:59:59Z'),
    snap('h13', '2024-05-01T13:30:00Z'),
    snap('h09', '2024-05-01T09:00:00Z'),
  ];
  const plan = planRetention(snaps, policy({ keepHourly: 3 }), 'utc');
  assert.deepEqual(kept(plan), ['h13:hourly', 'h11b:hourly', 'h10b:hourly']);
  assert.deepEqual(plan.prune, ['h11a', 'h10a', 'h09']);
});

test('keep-daily keeps the newest of each calendar day (in the given zone)', () => {
  const snaps = [
    snap('d1-early', '2024-05-01T00:00:00Z'),
    snap('d1-late', '2024-05-01T23:59:59.999Z'),
    snap('d2', '2024-05-02T12:00:00Z'),
    snap('d4-a', '2024-05-04T01:00:00Z'),
    snap('d4-b', '2024-05-04T02:00:00Z'),
  ];
  const cases: Array<[number, string[], string[]]> = [
    [1, ['d4-b:daily'], ['d4-a', 'd2', 'd1-late', 'd1-early']],
    [2, ['d4-b:daily', 'd2:daily'], ['d4-a', 'd1-late', 'd1-early']],
    [3, ['d4-b:daily', 'd2:daily', 'd1-late:daily'], ['d4-a', 'd1-early']],
    [7, ['d4-b:daily', 'd2:daily', 'd1-late:daily'], ['d4-a', 'd1-early']],
  ];
  for (const [n, keep, prune] of cases) {
    const plan = planRetention(snaps, policy({ keepDaily: n }), 'utc');
    assert.deepEqual(kept(plan), keep, `keep-daily ${n}`);
    assert.deepEqual(plan.prune, prune, `keep-daily ${n}`);
  }
  // Time zone offsets in the ISO strings are honoured: this is 2024-05-02 in UTC.
  const plan = planRetention([snap('x', '2024-05-01T23:30:00-02:00'), snap('y', '2024-05-02T00:30:00Z')], policy({ keepDaily: 5 }), 'utc');
  assert.deepEqual(kept(plan), ['x:daily']);
  assert.deepEqual(plan.prune, ['y']);
});

test('keep-weekly uses ISO weeks (Monday start, ISO week-year)', () => {
  const cases: Array<[[number, number, number], string]> = [
    [[2024, 1, 1], '2024-W01'], // Monday
    [[2023, 12, 31], '2023-W52'], // Sunday
    [[2021, 1, 3], '2020-W53'], // Sunday, belongs to the last week of 2020
    [[2021, 1, 4], '2021-W01'],
    [[2024, 12, 30], '2025-W01'], // Monday, first week of 2025
    [[2026, 12, 31], '2026-W53'],
  ];
  for (const [[y, m, d], key] of cases) assert.equal(isoWeekKey(y, m, d), key, `${y}-${m}-${d}`);

  const snaps = [
    snap('sun', '2024-05-05T20:00:00Z'), // Sunday: week 18
    snap('mon', '2024-05-06T01:00:00Z'), // Monday: week 19
    snap('wed', '2024-05-08T01:00:00Z'), // week 19
    snap('prev-sat', '2024-05-04T01:00:00Z'), // week 18
    snap('old', '2024-04-20T00:00:00Z'), // week 16
  ];
  const plan = planRetention(snaps, policy({ keepWeekly: 2 }), 'utc');
  assert.deepEqual(kept(plan), ['wed:weekly', 'sun:weekly']);
  assert.deepEqual(plan.prune, ['mon', 'prev-sat', 'old']);
  // Across the new year: Dec 30 2024 is in 2025-W01 together with Jan 2 2025.
  const ny = planRetention(
    [snap('dec29', '2024-12-29T00:00:00Z'), snap('dec30', '2024-12-30T00:00:00Z'), snap('jan2', '2025-01-02T00:00:00Z')],
    policy({ keepWeekly: 5 }),
    'utc',
  );
  assert.deepEqual(kept(ny), ['jan2:weekly', 'dec29:weekly']);
  assert.deepEqual(ny.prune, ['dec30']);
});

test('a snapshot can be kept for several reasons', () => {
  const snaps = [
    snap('a', '2024-05-01T10:00:00Z'),
    snap('b', '2024-05-01T11:00:00Z'),
    snap('c', '2024-05-02T09:00:00Z'),
    snap('d', '2024-05-02T09:30:00Z'),
    snap('e', '2024-05-09T09:00:00Z'),
  ];
  const plan = planRetention(snaps, policy({ keepLast: 1, keepHourly: 2, keepDaily: 3, keepWeekly: 2 }), 'utc');
  assert.deepEqual(kept(plan), ['e:last+hourly+daily+weekly', 'd:hourly+daily+weekly', 'b:daily']);
  assert.deepEqual(plan.prune, ['c', 'a']);
  // Every kept/pruned id appears exactly once overall.
  const all = [...plan.keep.map((k) => k.id), ...plan.prune].sort();
  assert.deepEqual(all, ['a', 'b', 'c', 'd', 'e']);
});

test('ties on createdAt are ordered by id (larger id counts as newer)', () => {
  const t = '2024-05-01T10:00:00Z';
  const snaps = [snap('id-1', t), snap('id-3', t), snap('id-2', t)];
  const plan = planRetention(snaps, policy({ keepLast: 1 }), 'utc');
  assert.deepEqual(kept(plan), ['id-3:last']);
  assert.deepEqual(plan.prune, ['id-2', 'id-1']);
  const daily = planRetention([...snaps].reverse(), policy({ keepDaily: 1 }), 'utc');
  assert.deepEqual(kept(daily), ['id-3:daily']);
  // Same answer for any input order.
  assert.deepEqual(planRetention([...snaps].reverse(), policy({ keepLast: 1 }), 'utc'), plan);
});

test('an all-zero policy is refused', () => {
  assert.throws(
    () => planRetention([snap('a', '2024-05-01T10:00:00Z')], policy({}), 'utc'),
    (e: unknown) =>
      e instanceof TsmError && e.code === 'EINVAL_ARG' && e.message === 'a retention policy must keep at least one checkpoint: give --keep-last N',
  );
  // Even with nothing to prune.
  assert.throws(() => planRetention([], policy({}), 'utc'), (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG');
});

test('validatePolicy checks each count', () => {
  const ok: Array<Partial<RetentionPolicy>> = [{ keepLast: 1 }, { keepWeekly: 10000 }, { keepHourly: 24, keepDaily: 7 }];
  for (const p of ok) assert.doesNotThrow(() => validatePolicy(policy(p)), JSON.stringify(p));
  const bad: Array<[Partial<RetentionPolicy>, RegExp]> = [
    [{ keepLast: -1 }, /--keep-last/],
    [{ keepLast: 1.5 }, /--keep-last/],
    [{ keepHourly: 10001, keepLast: 1 }, /--keep-hourly/],
    [{ keepDaily: Number.NaN, keepLast: 1 }, /--keep-daily/],
    [{ keepWeekly: Number.POSITIVE_INFINITY }, /--keep-weekly/],
    [{ keepLast: '3' as unknown as number }, /--keep-last/],
    [{}, /at least one/],
  ];
  for (const [p, re] of bad) {
    assert.throws(
      () => validatePolicy(policy(p)),
      (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG' && re.test(e.message) && !e.message.includes('\n'),
      JSON.stringify(p),
    );
  }
});

test('bad snapshots are refused', () => {
  assert.throws(() => planRetention([snap('a', 'yesterday')], policy({ keepLast: 1 }), 'utc'), /invalid creation time/);
  assert.throws(
    () => planRetention([snap('a', '2024-05-01T10:00:00Z'), snap('a', '2024-05-02T10:00:00Z')], policy({ keepLast: 1 }), 'utc'),
    /listed twice/,
  );
});
