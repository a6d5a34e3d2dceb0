import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfinedDir, SubdirCache, splitRelative } from '../../../src/util/confined-dir.js';

const T = mkdtempSync(path.join(tmpdir(), 'tsm-confined-'));
after(() => rmSync(T, { recursive: true, force: true }));

test('splitRelative: components, never `..`, `.`, empty or absolute', () => {
  assert.deepEqual(splitRelative(''), []);
  assert.deepEqual(splitRelative('a/b.c/d'), ['a', 'b.c', 'd']);
  for (const bad of ['/a', 'a/../b', '..', 'a//b', 'a/./b', 'a/', 'a\0b']) assert.throws(() => splitRelative(bad), /is absolute|is not a name/, bad);
});

test('beneath: a link at any component is refused, missing ones are made only when asked', async () => {
  const root = path.join(T, 'b');
  const out = path.join(T, 'out');
  mkdirSync(path.join(root, 'a'), { recursive: true });
  mkdirSync(out);
  symlinkSync(out, path.join(root, 'a', 'link'));
  await assert.rejects(ConfinedDir.beneath(root, 'a/link/x', { create: true }), /a\/link is a symbolic link/);
  await assert.rejects(ConfinedDir.beneath(root, 'a/link'), /a\/link is a symbolic link/);
  await assert.rejects(ConfinedDir.beneath(root, 'a/none'), { code: 'ENOENT' });
  writeFileSync(path.join(root, 'a', 'file'), 'x');
  await assert.rejects(ConfinedDir.beneath(root, 'a/file'), /a\/file is not a directory/);
  const d = await ConfinedDir.beneath(root, 'a/new/deep', { create: true, mode: 0o700 });
  await d.close();
  assert.deepEqual(readdirSync(out), []);
  assert.equal(existsSync(path.join(root, 'a', 'new', 'deep')), true);
});

test('a held directory moved away is still the one written; a name swapped for a link is refused, the link replaced not followed', async () => {
  const root = path.join(T, 'h');
  const out = path.join(T, 'hout');
  mkdirSync(path.join(root, 'd'), { recursive: true });
  mkdirSync(out);
  writeFileSync(path.join(out, 'target'), 'host file\n');
  const top = await ConfinedDir.open(root);
  const d = await top.sub('d');
  // the directory is moved and a link put in its place: the handle still writes into the directory itself
  renameSync(path.join(root, 'd'), path.join(root, 'moved'));
  symlinkSync(out, path.join(root, 'd'));
  await d.writeFileAtomic('f', Buffer.from('mine'));
  assert.equal(readFileSync(path.join(root, 'moved', 'f'), 'utf8'), 'mine');
  assert.deepEqual(readdirSync(out), ['target']);
  await assert.rejects(top.sub('d'), /d is a symbolic link/);
  // a file name that is a link: reading refuses, writing replaces the link
  symlinkSync(path.join(out, 'target'), path.join(root, 'moved', 'g'));
  await assert.rejects(d.readFile('g'), /g is a symbolic link/);
  await d.writeFileAtomic('g', Buffer.from('new'));
  assert.equal(readFileSync(path.join(out, 'target'), 'utf8'), 'host file\n');
  await d.unlink('g');
  await assert.rejects(d.readFile('../hout/target'), /is not a name/);
  await d.close();
  await top.close();
});

test('SubdirCache: one open per directory per operation; the next operation sees a swap', async () => {
  const root = path.join(T, 'c');
  mkdirSync(path.join(root, 'x', 'y'), { recursive: true });
  const top = await ConfinedDir.open(root);
  const one = new SubdirCache(top);
  const [a, b] = await Promise.all([one.get('x/y'), one.get('x/y')]);
  assert.equal(a, b);
  assert.equal(await one.get('x/none'), undefined);
  assert.ok(await one.get('x/none', true));
  await one.close();
  rmSync(path.join(root, 'x'), { recursive: true });
  symlinkSync(T, path.join(root, 'x'));
  const two = new SubdirCache(top);
  await assert.rejects(two.get('x/y'), /x is a symbolic link/);
  await two.close();
  await top.close();
});
