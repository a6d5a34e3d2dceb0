import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CRIU_DEADLINE, criuDeadlineSetting, formatCriuDeadline, parseCriuDeadline, planCriuDeadline, type CriuDeadlineSettings } from '../../../src/criu/deadline.js';
import { lastLogLines, stoppedCriuFailure } from '../../../src/criu/errors.js';
import { judge, type WatchState } from '../../../src/criu/watchdog.js';
import { isTsmError } from '../../../src/errors/errors.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const S = (baseS: number, perGiBS: number, stallS: number): CriuDeadlineSettings => ({ baseS, perGiBS, stallS });

test('planCriuDeadline: base + per GiB of memory (+ twice the link time of a streamed dump); the stall limit as set', () => {
  const rows: Array<[string, CriuDeadlineSettings, { memoryBytes: number; linkBps?: number }, number, number, RegExp]> = [
    ['empty container: the base', S(60, 20, 30), { memoryBytes: 0 }, 60_000, 30_000, /^60 s \+ 20 s\/GiB x 0 KiB$/],
    ['a few KiB', S(60, 20, 30), { memoryBytes: 500 * 1024 }, 60_010, 30_000, /x 500 KiB/],
    ['256 MiB', S(60, 20, 30), { memoryBytes: 256 * MiB }, 65_000, 30_000, /x 256 MiB$/],
    ['1 GiB', S(60, 20, 30), { memoryBytes: GiB }, 80_000, 30_000, /x 1 GiB$/],
    ['16 GiB', S(60, 20, 30), { memoryBytes: 16 * GiB }, 380_000, 30_000, /x 16 GiB$/],
    ['per GiB 0: the base alone', S(5, 0, 2), { memoryBytes: 8 * GiB }, 5_000, 2_000, /^5 s/],
    ['stall off', S(60, 20, 0), { memoryBytes: 0 }, 60_000, 0, /^60 s/],
    ['a 100 MB/s link for 1 GiB: 2 x 10.7 s more', S(60, 20, 30), { memoryBytes: GiB, linkBps: 100e6 }, 80_000 + Math.round((2 * GiB / 100e6) * 1000), 30_000, /\+ 21 s for the link$/],
    ['a link of 0 B/s (not measured): no allowance', S(60, 20, 30), { memoryBytes: GiB, linkBps: 0 }, 80_000, 30_000, /GiB$/],
    ['negative memory (a bad reading) counts as none', S(60, 20, 30), { memoryBytes: -5 }, 60_000, 30_000, /0 KiB/],
  ];
  for (const [what, s, w, hardMs, stallMs, why] of rows) {
    const d = planCriuDeadline(s, w);
    assert.equal(d.hardMs, hardMs, what);
    assert.equal(d.stallMs, stallMs, what);
    assert.match(d.why, why, what);
  }
});

test('parseCriuDeadline: BASE[+PER/GiB][,stall=S|off]; bad ones refused with one line naming the setting', () => {
  const good: Array<[string, CriuDeadlineSettings]> = [
    ['60', S(60, DEFAULT_CRIU_DEADLINE.perGiBS, DEFAULT_CRIU_DEADLINE.stallS)],
    ['60+20/GiB', S(60, 20, DEFAULT_CRIU_DEADLINE.stallS)],
    ['60+20/GiB,stall=30', S(60, 20, 30)],
    ['30,stall=2', S(30, DEFAULT_CRIU_DEADLINE.perGiBS, 2)],
    ['5+0/gib,stall=off', S(5, 0, 0)],
    [' 1.5 + 2.5/GiB , stall=1.5 ', S(1.5, 2.5, 1.5)],
  ];
  for (const [spec, want] of good) assert.deepEqual(parseCriuDeadline(spec, '--criu-deadline'), want, spec);
  for (const spec of ['', 'soon', '0', '0.5', '-1', '60+', '60+20', '60+20/MiB', '60,stall=0.2', '60,stall=', '60;stall=3', '100000', '60+100000/GiB']) {
    assert.throws(() => parseCriuDeadline(spec, '--criu-deadline'), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && /--criu-deadline/.test(e.message) && /BASE/.test(e.fix ?? ''), spec);
  }
  // round trip
  for (const s of [S(60, 20, 30), S(5, 0, 0), S(1.5, 2.5, 1.5)]) assert.deepEqual(parseCriuDeadline(formatCriuDeadline(s), 'x'), s);
});

test('criuDeadlineSetting: the flag, else TSMIGRATE_CRIU_DEADLINE, else the defaults', () => {
  assert.deepEqual(criuDeadlineSetting(undefined, {}), DEFAULT_CRIU_DEADLINE);
  assert.deepEqual(criuDeadlineSetting(undefined, { TSMIGRATE_CRIU_DEADLINE: '' }), DEFAULT_CRIU_DEADLINE);
  assert.deepEqual(criuDeadlineSetting(undefined, { TSMIGRATE_CRIU_DEADLINE: '10,stall=3' }), S(10, DEFAULT_CRIU_DEADLINE.perGiBS, 3));
  assert.deepEqual(criuDeadlineSetting('7+1/GiB', { TSMIGRATE_CRIU_DEADLINE: '10,stall=3' }), S(7, 1, DEFAULT_CRIU_DEADLINE.stallS));
  assert.throws(() => criuDeadlineSetting(undefined, { TSMIGRATE_CRIU_DEADLINE: 'x' }), /invalid TSMIGRATE_CRIU_DEADLINE "x"/);
});

test('judge: the hard deadline from its clock, the stall limit from the last change of the mark', () => {
  const d = { hardMs: 10_000, stallMs: 3_000, why: '' };
  const st0: WatchState = { startedAt: 0, hardFrom: 0, mark: undefined, movedAt: 0 };
  // rows: [what, state, now, mark, expiry kind or undefined]
  const rows: Array<[string, WatchState, number, string, 'deadline' | 'stalled' | undefined]> = [
    ['first sample: never a stall', st0, 5_000, 'a', undefined],
    ['moving', { ...st0, mark: 'a', movedAt: 4_000 }, 5_000, 'b', undefined],
    ['quiet for less than the limit', { ...st0, mark: 'a', movedAt: 3_000 }, 5_999, 'a', undefined],
    ['quiet for the limit', { ...st0, mark: 'a', movedAt: 3_000 }, 6_000, 'a', 'stalled'],
    ['moved just now after a long quiet', { ...st0, mark: 'a', movedAt: 0 }, 9_000, 'b', undefined],
    ['past the hard deadline though moving', { ...st0, mark: 'a', movedAt: 9_900 }, 10_000, 'b', 'deadline'],
    ['hard clock not started yet (images still arriving)', { ...st0, hardFrom: undefined, mark: 'a', movedAt: 59_000 }, 60_000, 'b', undefined],
    ['hard clock started late', { ...st0, hardFrom: 50_000, mark: 'a', movedAt: 59_000 }, 60_000, 'b', 'deadline'],
    ['stall off', { ...st0, mark: 'a', movedAt: 0 }, 9_000, 'a', undefined],
  ];
  for (const [what, st, now, mark, kind] of rows) {
    const dd = what === 'stall off' ? { ...d, stallMs: 0 } : d;
    const r = judge(dd, st, now, mark);
    assert.equal(r.expiry?.kind, kind, what);
    if (mark !== st.mark) assert.equal(r.state.movedAt, now, `${what}: a new mark is progress`);
  }
  const r = judge(d, { ...st0, mark: 'a', movedAt: 1_000 }, 4_500, 'a');
  assert.deepEqual({ after: r.expiry?.afterMs, quiet: r.expiry?.quietMs }, { after: 4_500, quiet: 3_500 });
});

test('stoppedCriuFailure: says CRIU stopped making progress, quotes its last log lines, keeps the fix', () => {
  const log = '(00.1) Seized task 1\n\n(00.2) Running post-dump scripts\n(00.3) \t[/x/stall.sh]\n';
  const s = stoppedCriuFailure({ kind: 'stalled', afterMs: 2_350, quietMs: 2_000, deadline: { hardMs: 60_000, why: '60 s' } }, log, 'thawed; allow more');
  assert.equal(s.reason, 'stalled');
  assert.equal(s.message, 'CRIU stopped making progress (nothing logged, written or computed for 2 s) and was killed after 2.4 s; its last log lines: "(00.1) Seized task 1" | "(00.2) Running post-dump scripts" | "(00.3) \t[/x/stall.sh]"');
  assert.equal(s.fix, 'thawed; allow more');
  const d = stoppedCriuFailure({ kind: 'deadline', afterMs: 4_000, quietMs: 0, deadline: { hardMs: 4_000, why: '4 s + 20 s/GiB x 1 MiB' } }, '', 'f');
  assert.match(d.message, /^CRIU stopped making progress within its deadline \(4 s: 4 s \+ 20 s\/GiB x 1 MiB\) and was killed after 4 s; it logged nothing$/);
  assert.deepEqual(lastLogLines('a\n\nb\nc\n  \nd\n', 3), ['b', 'c', 'd']);
  assert.equal(lastLogLines(`${'x'.repeat(500)}\n`, 1, 50)[0]!.length, 50);
});
