import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSegments } from '../../../src/archive/sparse.js';

async function readAll(file: string, length: number, padShrunk: boolean): Promise<Buffer> {
  const fh = await fs.open(file, 'r');
  try {
    const parts: Buffer[] = [];
    for await (const c of readSegments(fh, [{ offset: 0, length }], { padShrunk, what: 'f' })) parts.push(c);
    return Buffer.concat(parts);
  } finally {
    await fh.close();
  }
}

test('a file shorter than its header declared: an error for a still tree, zero padding for a live one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-live-'));
  try {
    const f = path.join(dir, 'f');
    writeFileSync(f, 'ten bytes!');
    await assert.rejects(readAll(f, 100, false), /f shrank while being read/);
    const got = await readAll(f, 100, true);
    assert.equal(got.length, 100, 'the entry keeps its declared size');
    assert.equal(got.subarray(0, 10).toString(), 'ten bytes!');
    assert.ok(got.subarray(10).every((b) => b === 0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
