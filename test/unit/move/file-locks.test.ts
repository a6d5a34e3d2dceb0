import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heldText, lockFileKey, parseFdinfoLocks, parseProcLocks, planFileLocks, type HeldLock, type SystemLock } from '../../../src/move/file-locks.js';

// /proc/PID/fdinfo/N as Linux 6.18 writes it for descriptors holding locks
const fdinfo = (lock: string) => `pos:\t0\nflags:\t0100002\nmnt_id:\t1234\nino:\t2261428\nlock:\t${lock}\n`;

test('parseFdinfoLocks reads every lock line of an fdinfo file, and nothing from one without', () => {
  const at = { pid: 42, fd: 3, path: '/tmp/f' };
  assert.deepEqual(parseFdinfoLocks(fdinfo('1: POSIX  ADVISORY  WRITE 42 00:43:2261428 0 EOF'), at), [
    { ...at, kind: 'POSIX', state: 'ADVISORY', type: 'WRITE', ownerPid: 42, file: '00:43:2261428', start: 0, end: 'EOF' },
  ]);
  const two = `${fdinfo('1: OFDLCK ADVISORY  READ -1 00:36:7 10 19')}lock:\t2: LEASE  BREAKING  UNLCK 42 00:36:7 0 EOF\n`;
  assert.deepEqual(parseFdinfoLocks(two, at).map((l) => [l.kind, l.state, l.type, l.ownerPid, l.start, l.end]), [
    ['OFDLCK', 'ADVISORY', 'READ', -1, 10, '19'],
    ['LEASE', 'BREAKING', 'UNLCK', 42, 0, 'EOF'],
  ]);
  assert.deepEqual(parseFdinfoLocks('pos:\t0\nflags:\t02\nmnt_id:\t9\nino:\t1\n', at), []);
});

const lock = (o: Partial<HeldLock>): HeldLock => ({
  pid: 10, fd: 3, kind: 'POSIX', state: 'ADVISORY', type: 'WRITE', file: '00:43:100', start: 0, end: 'EOF', ownerPid: 10, path: '/data/db.sqlite', ...o,
});

test('planFileLocks: every kind CRIU carries is counted once and passes --file-locks; what it cannot carry is refused with the reason', () => {
  const rows: Array<[string, HeldLock[], { held: [number, number, number, number]; refused: RegExp[] }]> = [
    ['no locks', [], { held: [0, 0, 0, 0], refused: [] }],
    ['flock and POSIX (SQLite, daemons)', [lock({ kind: 'FLOCK', file: '00:43:7', ownerPid: 11, pid: 11 }), lock({})], { held: [1, 1, 0, 0], refused: [] }],
    // after fork both processes show the flock of the description they share
    ['one flock shared by two processes', [lock({ kind: 'FLOCK', pid: 11, ownerPid: 11 }), lock({ kind: 'FLOCK', pid: 12, fd: 4, ownerPid: 11 })], { held: [1, 0, 0, 0], refused: [] }],
    ['two POSIX ranges of one file', [lock({ start: 0, end: '99' }), lock({ start: 100, end: 'EOF' })], { held: [0, 2, 0, 0], refused: [] }],
    ['OFD locks and leases, breaking ones too', [lock({ kind: 'OFDLCK', ownerPid: -1 }), lock({ kind: 'LEASE', state: 'ACTIVE', type: 'READ' }), lock({ kind: 'LEASE', state: 'BREAKING', type: 'UNLCK', file: '00:43:9' })], { held: [0, 0, 1, 2], refused: [] }],
    [
      'a kind CRIU does not know',
      [lock({ kind: 'DELEG', state: 'ACTIVE', type: 'READ', pid: 77, fd: 9, path: '/srv/export/a' }), lock({ kind: 'FLOCK' })],
      { held: [1, 0, 0, 0], refused: [/^\/srv\/export\/a \(process 77, descriptor 9\) holds a DELEG lock, a kind CRIU cannot checkpoint$/] },
    ],
  ];
  for (const [label, locks, want] of rows) {
    const p = planFileLocks({ held: locks, system: [], openFiles: new Map(), pids: new Set() });
    assert.equal(p.fileLocks, true, label);
    assert.deepEqual([p.held.flock, p.held.posix, p.held.ofd, p.held.lease], want.held, label);
    assert.equal(p.refused.length, want.refused.length, `${label}: ${p.refused.join('; ')}`);
    want.refused.forEach((re, i) => assert.match(p.refused[i]!, re, label));
  }
});

test('heldText says what the move carried', () => {
  assert.equal(heldText({ flock: 1, posix: 1, ofd: 0, lease: 0 }), '2 held: 1 flock, 1 POSIX');
  assert.equal(heldText({ flock: 0, posix: 0, ofd: 2, lease: 1 }), '3 held: 2 OFD, 1 lease');
  assert.equal(heldText({ flock: 0, posix: 0, ofd: 0, lease: 0 }), 'none held');
});

test('parseProcLocks reads held and blocked locks; lockFileKey writes mountinfo devices as /proc/locks does', () => {
  const text = '1: FLOCK  ADVISORY  WRITE 900 00:43:2261428 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 901 00:43:2261428 0 EOF\n2: OFDLCK ADVISORY  READ  -1 fd:01:77 0 99\n';
  assert.deepEqual(parseProcLocks(text).map((l) => [l.kind, l.ownerPid, l.file, l.blocked]), [
    ['FLOCK', 900, '00:43:2261428', false],
    ['FLOCK', 901, '00:43:2261428', true],
    ['OFDLCK', -1, 'fd:01:77', false],
  ]);
  assert.equal(lockFileKey('0:67', 2261428), '00:43:2261428');
  assert.equal(lockFileKey('253:1', '77'), 'fd:01:77');
});

test('planFileLocks: a lock on a file the container has open, held from outside it, is refused; its own, its waits and other files are not', () => {
  const file = '00:43:500';
  const own = lock({ kind: 'FLOCK', file, ownerPid: 10, pid: 10 });
  const sys = (o: Partial<SystemLock>): SystemLock => ({ kind: 'FLOCK', state: 'ADVISORY', type: 'WRITE', file, start: 0, end: 'EOF', ownerPid: 10, blocked: false, ...o });
  const facts = (held: HeldLock[], system: SystemLock[]) => ({ held, system, openFiles: new Map([[file, '/tmp/shared']]), pids: new Set([10, 11]) });
  const rows: Array<[string, ReturnType<typeof facts>, RegExp | undefined]> = [
    ['its own lock, in /proc/locks as well', facts([own], [sys({})]), undefined],
    ['a lock its process took after fdinfo was read', facts([], [sys({ ownerPid: 11 })]), undefined],
    ['a container process waiting for its own lock', facts([own], [sys({}), sys({ ownerPid: 11, blocked: true })]), undefined],
    ['a host lock on a file it does not have open', facts([], [sys({ ownerPid: 4000, file: '00:43:501' })]), undefined],
    ['a host process locked the container\'s file', facts([], [sys({ ownerPid: 4000 })]), /^\/tmp\/shared is locked \(FLOCK WRITE\) by process 4000 outside the container, which the move cannot take along$/],
    ['an OFD lock through a description outside', facts([], [sys({ kind: 'OFDLCK', ownerPid: -1, type: 'READ' })]), /^\/tmp\/shared is locked \(OFDLCK READ\) by an open file description outside the container/],
  ];
  for (const [label, f, want] of rows) {
    const p = planFileLocks(f);
    if (!want) assert.deepEqual(p.refused, [], label);
    else {
      assert.equal(p.refused.length, 1, label);
      assert.match(p.refused[0]!, want, label);
    }
  }
});
