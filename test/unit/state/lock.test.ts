/**
 * The state lock (src/state/lock.ts): a dead owner's lock is taken over (a
 * killed, not yet reaped owner too: the freeze watchdog takes over from a
 * SIGKILLed mover at once), and withLockWaiting waits for a live holder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { acquireLock, alive, withLockWaiting } from '../../../src/state/lock.js';
import { isTsmError } from '../../../src/errors/errors.js';

/** A zombie: a python parent that forks a child which exits at once, not reaped for a while. */
async function zombie(): Promise<{ pid: number; done: () => void }> {
  const parent = spawn('python3', ['-c', 'import os,sys,time\np=os.fork()\nif p==0: os._exit(0)\nprint(p, flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [line] = await createInterface({ input: parent.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value as string]);
  const pid = Number(line);
  // until the child has exited
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  return { pid, done: () => parent.kill('SIGKILL') };
}

test('alive: this process yes, a zombie no, a free pid no', async () => {
  assert.equal(alive(process.pid), true);
  const z = await zombie();
  try {
    assert.equal(alive(z.pid), false);
    // still in the process table: kill(pid, 0) alone says it exists
    assert.doesNotThrow(() => process.kill(z.pid, 0));
  } finally {
    z.done();
  }
  assert.equal(alive(2 ** 22 + 1), false);
});

test("a lock whose owner was killed but not reaped is taken over at once", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-lock-'));
  const z = await zombie();
  try {
    const lockDir = path.join(dir, 'c1');
    mkdirSync(lockDir);
    writeFileSync(path.join(lockDir, 'owner'), `${z.pid}\n`);
    const lock = await acquireLock(lockDir, 'container c1');
    await lock.release();
  } finally {
    z.done();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('withLockWaiting waits for a live holder, and gives up with EBUSY after its wait', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-lock-'));
  try {
    const lockDir = path.join(dir, 'c1');
    const held = await acquireLock(lockDir, 'container c1');
    setTimeout(() => void held.release(), 200);
    const t0 = Date.now();
    assert.equal(await withLockWaiting(lockDir, 'container c1', 5000, async () => 'ran'), 'ran');
    assert.ok(Date.now() - t0 >= 150);
    const again = await acquireLock(lockDir, 'container c1');
    await assert.rejects(withLockWaiting(lockDir, 'container c1', 200, async () => 'ran'), (e: Error) => isTsmError(e, 'EBUSY'));
    await again.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
