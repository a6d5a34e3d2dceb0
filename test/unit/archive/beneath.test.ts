/**
 * Paths beneath a directory descriptor (src/archive/beneath.ts and the
 * addon's openat2 / *at bindings) on a real directory: nothing resolves
 * outside the root or through a link, and names are single components.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants as C, promises as fs, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createFileAt, DirTree, kindAt } from '../../../src/archive/beneath.js';
import * as native from '../../../src/native/native.js';
import { importTempName, leftoverPid, sweepCheckpointLeftovers } from '../../../src/checkpoint/leftovers.js';

const base = mkdtempSync(path.join(tmpdir(), 'tsm-beneath-'));
after(() => rmSync(base, { recursive: true, force: true }));

test('openat2 beneath the root: "..", absolute paths and symlinks at any component are refused', async () => {
  const root = path.join(base, 'root');
  await fs.mkdir(path.join(root, 'd'), { recursive: true });
  await fs.writeFile(path.join(base, 'outside'), 'o');
  await fs.symlink(base, path.join(root, 'up'));
  await fs.symlink('d', path.join(root, 'rel'));
  await fs.writeFile(path.join(root, 'd', 'f'), 'f');
  const t = DirTree.open(root);
  try {
    closeSync(t.open('d/f', C.O_RDONLY));
    const rows: Array<[string, string]> = [
      ['../outside', 'EXDEV'],
      ['/etc/passwd', 'EXDEV'],
      ['up/outside', 'ELOOP'],
      ['rel/f', 'ELOOP'],
      ['d/../../outside', 'EXDEV'],
    ];
    for (const [p, code] of rows) assert.throws(() => t.open(p, C.O_RDONLY), (e: NodeJS.ErrnoException) => e.code === code && e.syscall === 'openat2', p);
    assert.equal(kindAt(t.fd, 'up'), 'symlink');
    assert.equal(kindAt(t.fd, 'd'), 'dir');
    assert.equal(kindAt(t.fd, 'nope'), null);
    // a file is never created through a link at its own name either
    await fs.symlink(path.join(base, 'outside'), path.join(root, 'd', 'trap'));
    assert.throws(() => t.withParent(['d', 'trap'], (at) => createFileAt(at, 0o600)), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' || e.code === 'ELOOP');
    assert.equal(readFileSync(path.join(base, 'outside'), 'utf8'), 'o');
  } finally {
    t.close();
  }
  assert.throws(() => DirTree.open(path.join(root, 'up')), (e: NodeJS.ErrnoException) => e.code === 'ELOOP' || e.code === 'ENOTDIR');
});

test('the *at bindings take one name: "/" in it, "." and ".." are refused before any syscall', () => {
  const t = DirTree.open(base);
  try {
    for (const bad of ['a/b', '.', '..', '', '/x']) {
      assert.throws(() => native.mkdirat(t.fd, bad, 0o700), (e: NodeJS.ErrnoException) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_VALUE', bad);
      assert.throws(() => native.unlinkat(t.fd, bad), TypeError, bad);
    }
  } finally {
    t.close();
  }
});

test('leftovers: the names of a killed import or removal carry its pid; only a dead one is swept', async () => {
  assert.equal(importTempName(42, 'abcdef'), '.import-42-abcdef');
  const rows: Array<[string, number | null]> = [
    ['.import-42-abcdef', 42],
    ['.rm-web-20260101t000000z-aaaa-77', 77],
    ['.import-x-abc', null],
    ['.tmp-web-1', null],
    ['web-20260101t000000z-aaaa', null],
    ['.import-0-ab', null],
  ];
  for (const [n, pid] of rows) assert.equal(leftoverPid(n), pid, n);
  const store = path.join(base, 'store');
  await fs.mkdir(store);
  const dead = 2 ** 22 + 12345; // above pid_max's default: no such process
  for (const n of [`.import-${dead}-ab`, `.rm-web-1-${dead}`, `.import-${process.pid}-cd`, 'web-1']) await fs.mkdir(path.join(store, n));
  assert.deepEqual((await sweepCheckpointLeftovers(store)).sort(), [`.import-${dead}-ab`, `.rm-web-1-${dead}`]);
  assert.deepEqual((await fs.readdir(store)).sort(), [`.import-${process.pid}-cd`, 'web-1']);
});
