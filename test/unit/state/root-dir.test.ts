/**
 * The state root and locks/ are 0700 whatever the umask; an existing root
 * that another user owns, or that others may write to, is refused with one
 * line and a fix, and left as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, tempRoot } from '../../helpers/cli.js';
import { acquireLock } from '../../../src/state/lock.js';

function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  return fn().finally(() => process.umask(old));
}

/** Every directory at or under `dir`, with its permission bits. */
function dirModes(dir: string, out: Array<[string, number]> = []): Array<[string, number]> {
  const st = lstatSync(dir);
  if (!st.isDirectory()) return out;
  out.push([dir, st.mode & 0o7777]);
  for (const e of readdirSync(dir)) dirModes(path.join(dir, e), out);
  return out;
}

/** Every entry at or under `dir` (links not followed), with its type and mode. */
function listing(dir: string, out: string[] = []): string[] {
  const st = lstatSync(dir);
  out.push(`${dir} ${st.mode.toString(8)} ${st.uid}`);
  if (st.isDirectory()) for (const e of readdirSync(dir).sort()) listing(path.join(dir, e), out);
  return out;
}

test('umask 000: the CLI makes the state root and locks/ 0700, and nothing under the root writable by others', async () => {
  const base = tempRoot('tsm-rootdir-');
  try {
    const root = path.join(base, 'state');
    const src = path.join(base, 'src');
    mkdirSync(path.join(src, 'etc'), { recursive: true, mode: 0o755 });
    writeFileSync(path.join(src, 'etc', 'hostname'), 'x\n');
    const r = await withUmask(0, () => cli(root, ['image', 'import', 'tiny', src]));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(root).mode & 0o7777, 0o700);
    assert.equal(statSync(path.join(root, 'locks')).mode & 0o7777, 0o700);
    for (const [d, mode] of dirModes(root)) assert.equal(mode & 0o022, 0, `${d} is ${mode.toString(8)}`);
    // a lock taken in-process under umask 000 (its directory and its parent)
    const lock = await withUmask(0, () => acquireLock(path.join(root, 'locks', 'sub', 'thing'), 'a thing'));
    try {
      assert.equal(statSync(path.join(root, 'locks', 'sub')).mode & 0o7777, 0o700);
      assert.equal(statSync(path.join(root, 'locks', 'sub', 'thing')).mode & 0o7777, 0o700);
    } finally {
      await lock.release();
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

const refusals: Array<{ what: string; make: (root: string) => void; want: RegExp }> = [
  { what: 'world-writable root', make: (root) => { mkdirSync(root); chmodSync(root, 0o777); }, want: /state has mode 777 \(other users may write to it\).*; chmod 0700 / },
  { what: 'group-writable root', make: (root) => { mkdirSync(root); chmodSync(root, 0o770); }, want: /has mode 770.*; chmod 0700 / },
  { what: 'root owned by another user', make: (root) => { mkdirSync(root, { mode: 0o700 }); chownSync(root, 4321, 4321); }, want: /belongs to uid 4321, not to root.*chown root:root / },
  { what: 'world-writable locks/', make: (root) => { mkdirSync(path.join(root, 'locks'), { recursive: true, mode: 0o700 }); chmodSync(path.join(root, 'locks'), 0o1777); }, want: /locks has mode 1777.*chmod 0700 / },
  { what: 'locks/ a symbolic link', make: (root) => { mkdirSync(root, { mode: 0o700 }); mkdirSync(`${root}.elsewhere`); symlinkSync(`${root}.elsewhere`, path.join(root, 'locks')); }, want: /locks is a symbolic link/ },
  { what: 'root a symbolic link made by another user', make: (root) => { mkdirSync(`${root}.real`, { mode: 0o700 }); symlinkSync(`${root}.real`, root); }, want: /is a symbolic link made by uid 4321/ },
];

for (const c of refusals) {
  test(`refused, changing nothing: ${c.what}`, async () => {
    const base = tempRoot('tsm-rootdir-');
    try {
      const root = path.join(base, 'state');
      c.make(root);
      if (lstatSync(root).isSymbolicLink()) {
        // lchown: chownSync above followed the link; give the link itself to the other user
        const { lchownSync } = await import('node:fs');
        chownSync(root, 0, 0);
        lchownSync(root, 4321, 4321);
      }
      const before = listing(base);
      const r = await cli(root, ['ps']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, c.want);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.deepEqual(listing(base), before);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
}

test('an existing root of root\'s, not writable by others (0711 from older versions), is used as it is', async () => {
  const base = tempRoot('tsm-rootdir-');
  try {
    const root = path.join(base, 'state');
    mkdirSync(root);
    chmodSync(root, 0o711);
    const r = await cli(root, ['ps']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(root).mode & 0o7777, 0o711);
    assert.equal(statSync(path.join(root, 'locks')).mode & 0o7777, 0o700);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
