import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatInterval, parseInterval } from '../../../src/schedule/interval.js';
import { TsmError } from '../../../src/errors/errors.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

test('parseInterval accepts simple and compound intervals', () => {
  const cases: Array<[string, number]> = [
    ['30s', 30 * S],
    ['1s', S],
    ['15m', 15 * M],
    ['2h', 2 * H],
    ['1d', D],
    ['1h30m', H + 30 * M],
    ['1d12h', D + 12 * H],
    ['1d2h3m4s', D + 2 * H + 3 * M + 4 * S],
    ['90s', 90 * S],
    ['90m', 90 * M],
    ['015m', 15 * M],
    ['  15m\n', 15 * M],
    ['366d', 366 * D],
    ['365d24h', 366 * D],
  ];
  for (const [text, ms] of cases) assert.equal(parseInterval(text), ms, text);
});

test('parseInterval rejects bad input with an --every message', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['   ', /empty/],
    ['15', /no unit/],
    ['15x', /unknown unit "x"/],
    ['15M', /unknown unit "M"/],
    ['1.5h', /whole numbers/],
    ['1,5h', /whole numbers/],
    ['-5m', /unexpected "-"/],
    ['+5m', /unexpected "\+"/],
    ['15 m', /no unit/],
    ['m', /unexpected "m"/],
    ['30m1h', /largest first/],
    ['1h1h', /largest first/],
    ['0s', /shorter than 1s/],
    ['0m', /shorter than 1s/],
    ['367d', /longer than 366d/],
    ['366d1s', /longer than 366d/],
    ['99999999999999999999999d', /longer than 366d/],
    ['1h 30m', /unexpected " "/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseInterval(text),
      (e: unknown) => {
        assert.ok(e instanceof TsmError, text);
        assert.equal(e.code, 'EINVAL_ARG');
        assert.match(e.message, /^invalid --every /, text);
        assert.match(e.message, re, text);
        assert.doesNotMatch(e.message, /\n/);
        assert.ok(e.fix);
        return true;
      },
      text,
    );
  }
});

test('formatInterval is compact and round-trips', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [S, '1s'],
    [30 * S, '30s'],
    [90 * S, '1m30s'],
    [H + 30 * M, '1h30m'],
    [D, '1d'],
    [D + H + M + S, '1d1h1m1s'],
    [2 * D + 5 * S, '2d5s'],
    [1500, '1s'],
    [999, '0s'],
  ];
  for (const [ms, text] of cases) assert.equal(formatInterval(ms), text, String(ms));
  for (const text of ['30s', '15m', '2h', '1d', '1h30m', '366d', '1d2h3m4s']) {
    assert.equal(formatInterval(parseInterval(text)), text);
  }
  assert.equal(formatInterval(parseInterval('90m')), '1h30m');
});

test('formatInterval rejects negative and non-finite input', () => {
  for (const ms of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => formatInterval(ms), (e: unknown) => e instanceof TsmError && e.code === 'EINVAL_ARG');
  }
});
