import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import { cli, tempRoot } from '../../helpers/cli.js';

const root = tempRoot();
const work = mkdtempSync(path.join(tmpdir(), 'tsm-crafted-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

async function craft(name: string, entries: Array<Partial<tar.Header> & { name: string; body?: string }>): Promise<string> {
  const pack = tar.pack();
  for (const e of entries) {
    const { body, ...h } = e;
    pack.entry(h, body ?? '');
  }
  pack.finalize();
  const file = path.join(work, name);
  await pipeline(pack, createWriteStream(file));
  return file;
}

const sentinel = path.join(work, 'escaped');
const cases: Array<[string, Array<Partial<tar.Header> & { name: string; body?: string }>, RegExp]> = [
  ['an absolute path', [{ name: sentinel, body: 'x' }], /unsafe|absolute/i],
  ['a .. path', [{ name: '../escaped', body: 'x' }], /unsafe|\.\./i],
  ['a symlink pointing out, then a write through it', [{ name: 'manifest.json', type: 'symlink', linkname: work }, { name: 'manifest.json/escaped', body: 'x' }], /unsafe|symlink/i],
  ['a hard link to a file outside', [{ name: 'criu.tar.zst', type: 'link', linkname: '../../etc/passwd' }], /unsafe|link/i],
  ['a device node', [{ name: 'criu.tar.zst', type: 'character-device', devmajor: 1, devminor: 3 }], /device/i],
  ['an unexpected file', [{ name: 'manifest.json', body: '{}' }, { name: 'evil.sh', body: 'x' }], /unexpected|manifest/i],
  ['a bad manifest', [{ name: 'manifest.json', body: '{"format":"nope"}' }], /manifest/i],
];

for (const [what, entries, want] of cases) {
  test(`checkpoint import refuses ${what} and writes nothing outside`, async () => {
    const file = await craft(`${what.replace(/\W+/g, '-')}.tar`, entries);
    const r = await cli(root, ['checkpoint', 'import', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, want);
    assert.equal(existsSync(sentinel), false, 'nothing escaped');
    const ck = path.join(root, 'checkpoints');
    assert.deepEqual(existsSync(ck) ? readdirSync(ck) : [], [], 'nothing left in the store');
  });
}

test('checkpoint import refuses a file that is not an archive', async () => {
  const f = path.join(work, 'junk.tar.zst');
  writeFileSync(f, 'this is not a tar');
  const r = await cli(root, ['checkpoint', 'import', f]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /not a checkpoint archive/);
});
