import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progressText } from '../../../src/cli/commands/move.js';

test('progress line: bytes, rate, and time left once the total and the rate are known', () => {
  assert.equal(progressText(0, 1), '');
  assert.match(progressText(50 << 20, 1), /^ 50(\.0)? ?MiB at 50(\.0)? ?MiB\/s$/);
  const t = progressText(100 << 20, 2, 300 << 20);
  assert.match(t, /100(\.0)? ?MiB of ~300(\.0)? ?MiB at 50(\.0)? ?MiB\/s, ~4 s left$/);
  assert.doesNotMatch(progressText(10 << 20, 0.1, 300 << 20), /left/, 'no guess from the first tenth of a second');
  assert.doesNotMatch(progressText(400 << 20, 5, 300 << 20), /left/, 'past an estimate that was low: no negative time');
});
