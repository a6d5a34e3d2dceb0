import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDue, nextDue, type ScheduleTiming } from '../../../src/schedule/due.js';
import { parseCron } from '../../../src/schedule/cron.js';
import { parseInterval } from '../../../src/schedule/interval.js';

const at = (iso: string): Date => new Date(iso);
const every15: ScheduleTiming = { kind: 'every', everyMs: parseInterval('15m') };
const nightly: ScheduleTiming = { kind: 'cron', spec: parseCron('0 3 * * *') };
const created = at('2024-05-01T12:00:00.000Z');

test('every: first run at once, then lastRun + interval', () => {
  assert.equal(nextDue(every15, null, created).toISOString(), '2024-05-01T12:00:00.000Z');
  assert.equal(isDue(every15, null, created, created), true);
  assert.equal(isDue(every15, null, created, at('2024-05-01T11:59:59.999Z')), false);
  const last = at('2024-05-01T12:00:05.000Z');
  assert.equal(nextDue(every15, last, created).toISOString(), '2024-05-01T12:15:05.000Z');
  const cases: Array<[string, boolean]> = [
    ['2024-05-01T12:15:04.999Z', false],
    ['2024-05-01T12:15:05.000Z', true],
    ['2024-05-01T13:00:00.000Z', true],
  ];
  for (const [now, due] of cases) assert.equal(isDue(every15, last, created, at(now)), due, now);
});

test('cron: never run waits for the first matching time strictly after creation', () => {
  assert.equal(nextDue(nightly, null, created, 'utc').toISOString(), '2024-05-02T03:00:00.000Z');
  assert.equal(isDue(nightly, null, created, at('2024-05-02T02:59:59.999Z'), 'utc'), false);
  assert.equal(isDue(nightly, null, created, at('2024-05-02T03:00:00.000Z'), 'utc'), true);
  // Created exactly on a matching minute: that minute is not "after" creation.
  const onTheDot = at('2024-05-01T03:00:00.000Z');
  assert.equal(nextDue(nightly, null, onTheDot, 'utc').toISOString(), '2024-05-02T03:00:00.000Z');
});

test('cron: next due follows the last run', () => {
  const last = at('2024-05-02T03:00:02.000Z');
  assert.equal(nextDue(nightly, last, created, 'utc').toISOString(), '2024-05-03T03:00:00.000Z');
  assert.equal(isDue(nightly, last, created, at('2024-05-02T23:00:00Z'), 'utc'), false);
});

test('missed runs are caught up once, not once per missed period', () => {
  const cases: Array<[string, ScheduleTiming, Date]> = [
    ['every', every15, at('2024-05-01T12:00:00.000Z')],
    ['cron', nightly, at('2024-05-02T03:00:00.000Z')],
  ];
  for (const [name, timing, lastRun] of cases) {
    // The daemon was down for ten days: far more than ten periods.
    const now = at('2024-05-12T10:07:00.000Z');
    assert.equal(isDue(timing, lastRun, created, now, 'utc'), true, name);
    // It runs once, now, and records that run.
    const caughtUp = now;
    const nextAfterCatchUp = nextDue(timing, caughtUp, created, 'utc');
    assert.ok(nextAfterCatchUp.getTime() > now.getTime(), name);
    assert.equal(isDue(timing, caughtUp, created, now, 'utc'), false, name);
    // A daemon loop ticking every minute for the next few minutes runs nothing more.
    for (let i = 1; i <= 5; i++) {
      assert.equal(isDue(timing, caughtUp, created, new Date(now.getTime() + i * 60_000), 'utc'), false, `${name} +${i}m`);
    }
  }
  assert.equal(nextDue(every15, at('2024-05-12T10:07:00.000Z'), created).toISOString(), '2024-05-12T10:22:00.000Z');
  assert.equal(nextDue(nightly, at('2024-05-12T10:07:00.000Z'), created, 'utc').toISOString(), '2024-05-13T03:00:00.000Z');
});

test('a simulated daemon runs the expected number of times', () => {
  // Tick every minute for a day with a 2h gap (daemon down 06:00-08:00).
  const start = Date.parse('2024-05-01T00:00:00Z');
  const timing: ScheduleTiming = { kind: 'cron', spec: parseCron('0 * * * *') };
  let last: Date | null = null;
  const runs: string[] = [];
  for (let m = 0; m < 24 * 60; m++) {
    const now = new Date(start + m * 60_000);
    if (now.getUTCHours() >= 6 && now.getUTCHours() < 8) continue;
    if (now.getUTCHours() === 8 && now.getUTCMinutes() < 30) continue; // back at 08:30
    if (isDue(timing, last, new Date(start - 1), now, 'utc')) {
      runs.push(now.toISOString().slice(11, 16));
      last = now;
    }
  }
  // 00..05 on time, one catch-up at 08:30 for the missed 06:00/07:00/08:00, then 09..23.
  const want = ['00:00', '01:00', '02:00', '03:00', '04:00', '05:00', '08:30'];
  for (let h = 9; h < 24; h++) want.push(`${String(h).padStart(2, '0')}:00`);
  assert.deepEqual(runs, want);
});
