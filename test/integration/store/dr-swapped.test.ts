/**
 * Finding 7: a disaster-recovery restore over real SSH from a store whose
 * chunks a hostile store host swapped (each object intact, its checksum
 * right) fails with one clear error, and what the restore began on the target
 * is rolled back: no container left "creating", no record "receiving", the
 * agent alive. Then, with the chunks put back, the same restore works.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers, unfinishedMigrations } from '../../helpers/leftovers.js';
import { addRigPeer, Rig } from '../../helpers/rig.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { ChunkStore } from '../../../src/store/chunk-store.js';

const A = tempRoot('tsm-swapA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
const STORE = path.join(A, 'swap-store');
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
const RA = (args: string[]) => cli(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
// a static 1 MiB file makes the upper stream several chunks long
const work = ['sh', '-c', 'dd if=/dev/urandom of=/static bs=64k count=16 2>/dev/null; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

before(async () => {
  B = await addRigPeer(rig, 'swap-b', '127.0.0.41', A, TA);
  await importBusybox(A);
});
after(async () => {
  await cli(A, ['rm', '-f', 'swp']);
  if (B) await cli(B, ['rm', '-f', 'swp']);
  rig.stopAll('swap-b');
  rmSync(A, { recursive: true, force: true });
});

async function chunkFiles(id: string): Promise<{ criu: string[]; upper: string[] }> {
  const backend = new LocalBackend(STORE);
  const store = await ChunkStore.open(backend, { create: false, key: null, seen: null });
  try {
    const s = await store.load(id);
    const files = (ids: Buffer) => {
      const out: string[] = [];
      for (let i = 0; i < ids.length; i += 32) out.push(backend.chunkFile(ids.subarray(i, i + 32).toString('hex')));
      return out;
    };
    return { criu: files(s.ids.criu), upper: files(s.ids.upper) };
  } finally {
    await store.backend.close();
  }
}

test('DR restore over SSH from a store with swapped chunks: one clear error, nothing left creating or receiving', async () => {
  await TA(['run', '-d', 'swp', '--image', 'busybox', '--', ...work]);
  const count = async (root: string) => Number((await cliOk(root, ['exec', 'swp', '--', 'cat', '/tmp/count'])).trim());
  await eventually(async () => (await count(A)) > 3, 20000);
  const ck = JSON.parse(await TA(['--json', 'checkpoint', 'swp', '--store', STORE])) as { id: string };
  await TA(['rm', '-f', 'swp']);

  // the upper stream goes first: swap two of the CRIU stream's chunks, so the target has begun and received the upper layer
  const files = await chunkFiles(ck.id);
  assert.ok(files.upper.length >= 2, `upper stream in ${files.upper.length} chunks`);
  const [x, y] = [files.criu[files.criu.length - 1]!, files.criu[0]!];
  assert.notEqual(x, y);
  const swap = () => {
    renameSync(x, `${x}.t`);
    renameSync(y, x);
    renameSync(`${x}.t`, y);
  };
  swap();

  const r = await RA(['restore', 'swp', '--latest', '--from', STORE, '--on', 'swap-b']);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^tsmigrate: error: chunk [0-9a-f]{12}… of checkpoint \S+ (is corrupted|does not match its id)/);
  // nothing left on the target: no container (creating or otherwise), no unfinished record, the agent still answers
  assert.deepEqual(leftovers(B, 'swp'), []);
  assert.deepEqual(unfinishedMigrations(B), []);
  assert.match(await cliOk(B, ['ps']), /^NAME/);
  assert.deepEqual(leftovers(A, 'swp'), []);
  // the same onto this host (the agent in-process): the same one line, nothing left here either
  const here = await RA(['restore', 'swp', '--latest', '--from', STORE]);
  assert.notEqual(here.code, 0);
  assert.equal(here.stderr.trim().split('\n').length, 1, here.stderr);
  assert.match(here.stderr, /^tsmigrate: error: chunk [0-9a-f]{12}… of checkpoint \S+ does not match its id/);
  assert.deepEqual(leftovers(A, 'swp'), []);
  assert.deepEqual(unfinishedMigrations(A), []);

  // the same restore with the chunks back where they belong works
  swap();
  const ok = await RA(['--json', 'restore', 'swp', '--latest', '--from', STORE, '--on', 'swap-b']);
  assert.equal(ok.code, 0, ok.stderr);
  const c0 = await count(B);
  await eventually(async () => (await count(B)) > c0 + 3, 10000);
  assert.equal(readFileSync(path.join(B, 'containers/swp/rootfs/upper/static')).length, 1 << 20);
});
