import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { diskBytes } from '../../../src/move/peer-check.js';

test('diskBytes (read beneath open directories): files in whole blocks, a block per directory, links not followed', async () => {
  const base = mkdtempSync(path.join(tmpdir(), 'tsm-du-'));
  try {
    const tree = path.join(base, 'upper');
    mkdirSync(path.join(tree, 'a/b'), { recursive: true });
    writeFileSync(path.join(tree, 'a/one'), 'x');
    writeFileSync(path.join(tree, 'a/b/two'), Buffer.alloc(5000));
    mkdirSync(path.join(base, 'host'));
    writeFileSync(path.join(base, 'host/big'), Buffer.alloc(1 << 20));
    symlinkSync(path.join(base, 'host'), path.join(tree, 'link'));
    // a: 4096, a/b: 4096, one: 4096, two: 8192, the link: 4096 (its own length, rounded)
    assert.equal(await diskBytes(tree), 4 * 4096 + 8192);
    assert.equal(await diskBytes(path.join(base, 'missing')), 0);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
