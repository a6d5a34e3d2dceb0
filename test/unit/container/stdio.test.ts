import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dumpExternals, isTtyStdio, stdioInheritFds, validStdio } from '../../../src/container/stdio.js';
import { restoreArgv } from '../../../src/criu/argv.js';

const pipes = { stdout: 'pipe:[11]', stderr: 'pipe:[12]' };
const tty = { stdout: 'tty[8800:1a]', stderr: 'tty[8800:1a]' };

test('stdio keys: pipes or one pty, nothing else', () => {
  const cases: Array<[unknown, boolean]> = [
    [pipes, true],
    [tty, true],
    [{ stdout: 'tty[8800:1a]', stderr: 'tty[8801:1a]' }, false],
    [{ stdout: 'tty[8800:1a]', stderr: 'pipe:[12]' }, false],
    [{ stdout: 'tty[88g0:1a]', stderr: 'tty[88g0:1a]' }, false],
    [{ stdout: 'socket:[1]', stderr: 'socket:[2]' }, false],
    [{ stdout: 'pipe:[1]' }, false],
    [null, false],
  ];
  for (const [s, ok] of cases) assert.equal(validStdio(s), ok, JSON.stringify(s));
  assert.equal(isTtyStdio(tty), true);
  assert.equal(isTtyStdio(pipes), false);
});

test('a pty is external to the dump and handed to the restore as fd 3; pipes as fds 3 and 4', () => {
  assert.deepEqual(dumpExternals(undefined, pipes), []);
  assert.deepEqual(dumpExternals({ mode: 'bridge', hostVeth: 'tsm-ab' } as never, tty), ['veth[eth0]:tsm-ab', 'tty[8800:1a]']);
  assert.deepEqual(stdioInheritFds(tty), [{ fd: 3, key: 'tty[8800:1a]' }]);
  assert.deepEqual(stdioInheritFds(pipes), [
    { fd: 3, key: 'pipe:[11]' },
    { fd: 4, key: 'pipe:[12]' },
  ]);
  const argv = restoreArgv({ imagesDir: '/i', root: '/r', pidfile: '/p', detached: true, sibling: true, inheritFds: stdioInheritFds(tty) });
  assert.deepEqual(argv.slice(argv.indexOf('--inherit-fd'), argv.indexOf('--inherit-fd') + 2), ['--inherit-fd', 'fd[3]:tty[8800:1a]']);
});
