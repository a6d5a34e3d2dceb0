import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseStdioLine } from '../../../src/shim/spawn.js';
import { NO_PIPE, pipesOf, stdioOf } from '../../../src/container/stdio.js';

test('parseStdioLine: the shim\'s "stdio pipe:[A] pipe:[B]", nothing else', () => {
  const rows: Array<[string | null, { stdout: string; stderr: string } | undefined]> = [
    ['stdio pipe:[12] pipe:[13]', { stdout: 'pipe:[12]', stderr: 'pipe:[13]' }],
    ['stdio pipe:[12]', undefined],
    ['stdio pipe:[12] socket:[13]', undefined],
    ['stdio pipe:[12] pipe:[13] x', undefined],
    ['pid 12', undefined],
    [null, undefined],
  ];
  for (const [line, want] of rows) assert.deepEqual(parseStdioLine(line), want, String(line));
});

test('stdioOf: the recorded pipes; without them, none unless the pid is a live tsm-shim', async () => {
  const rec = { stdout: 'pipe:[1]', stderr: 'pipe:[2]' };
  assert.deepEqual(await stdioOf({ stdio: rec, shimPid: process.pid }, false), rec);
  // this process is no supervisor: its descriptors are not taken for one's
  assert.equal(await stdioOf({ shimPid: process.pid }, false), undefined);
  assert.equal(await stdioOf({}, false), undefined);
  assert.equal(NO_PIPE, 'pipe:[0]');
  assert.deepEqual(await pipesOf(2 ** 22 + 7), [], 'no such process: no pipes');
});

test('stdioOf: a pty container without recorded keys has them read from its init (none here: no such process)', async () => {
  assert.equal(await stdioOf({ initPid: 2 ** 22 + 7 }, true), undefined);
  const rec = { stdout: 'tty[8800:1a]', stderr: 'tty[8800:1a]' };
  assert.deepEqual(await stdioOf({ stdio: rec, initPid: 1 }, true), rec);
});
