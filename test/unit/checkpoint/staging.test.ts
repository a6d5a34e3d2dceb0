/**
 * The staging base is never adopted from another user (issue 16: another user
 * created /dev/shm/tsmigrate first and swapped the checkpoint's directory).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeStagingDir } from '../../../src/checkpoint/staging.js';

const scratch = () => mkdtempSync(path.join(os.tmpdir(), 'tsm-staging-'));

test('a fresh base is made 0700 and a private directory made in it', async () => {
  const d = scratch();
  try {
    const base = path.join(d, 'tsmigrate');
    const dir = await makeStagingDir(base, 'ck');
    assert.equal(statSync(base).mode & 0o777, 0o700);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(path.dirname(dir), base);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

// as root, as every test here (it makes a directory owned by another user)
test("a base another user made, a link, or one others may enter is refused in one line, and nothing is written in it", async () => {
  const d = scratch();
  try {
    const foreign = path.join(d, 'foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 4321, 4321);
    await assert.rejects(makeStagingDir(foreign, 'ck'), /belongs to uid 4321.*another user may have created it/);
    assert.deepEqual(readdirSync(foreign), []);

    const target = path.join(d, 'elsewhere');
    mkdirSync(target, { mode: 0o700 });
    const link = path.join(d, 'link');
    symlinkSync(target, link);
    await assert.rejects(makeStagingDir(link, 'ck'), /is a symbolic link/);
    assert.deepEqual(readdirSync(target), []);

    const open = path.join(d, 'open');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    await assert.rejects(makeStagingDir(open, 'ck'), /has mode 1777|has mode 777/);
    assert.deepEqual(readdirSync(open), []);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
