/**
 * Finding 6 against a real encrypted store on another host over real SSH,
 * with real checkpoints (CRIU): the store host (here: this test, writing its
 * directory) alters a chunk and recomputes its checksum, deletes the newest
 * checkpoint's metadata, replays an older index. `store verify` with the key
 * names the altered chunk; `restore --latest` names the lost checkpoint, and
 * the rollback, instead of silently taking an older one; file names carry no
 * container name or time. With the store put right, the restore works.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { addRigPeer, Rig } from '../../helpers/rig.js';
import { deriveKey, snapshotName } from '../../../src/store/keys.js';

const A = tempRoot('tsm-authA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let C = '';
const DIR = path.join(rig.dir, 'auth-store');
const STORE = `auth-c:${DIR}`;
const KEY = path.join(A, 'store.key');
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
const RA = (args: string[]) => cli(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
const S = ['--store', STORE, '--encrypt-key', KEY];
const R = ['--from', STORE, '--encrypt-key', KEY];
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];

before(async () => {
  C = await addRigPeer(rig, 'auth-c', '127.0.0.42', A, TA);
  await importBusybox(A);
  await TA(['store', 'keygen', KEY]);
});
after(async () => {
  await cli(A, ['rm', '-f', 'authw']);
  rig.stopAll('auth-c');
  rmSync(A, { recursive: true, force: true });
});

const oneLine = (r: { stderr: string }) => assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);

test('a hostile store host: altered chunk, lost newest checkpoint, replayed index; each named, nothing restored from an older one', async () => {
  await TA(['run', '-d', 'authw', '--image', 'busybox', '--', ...counter]);
  const count = async () => Number((await cliOk(A, ['exec', 'authw', '--', 'cat', '/tmp/count'])).trim());
  await eventually(async () => (await count()) > 3, 20000);
  const first = JSON.parse(await TA(['--json', 'checkpoint', 'authw', ...S])) as { id: string };
  const index1 = await fs.readFile(path.join(DIR, 'index'));
  const atFirst = await count();
  await eventually(async () => (await count()) > atFirst + 10, 20000);
  const second = JSON.parse(await TA(['--json', 'checkpoint', 'authw', ...S])) as { id: string };
  assert.match(await TA(['store', 'verify', ...S]), /ok \(\d+ chunks authenticated/);

  // no container name or time in any file name on the store host
  const names = (await fs.readdir(DIR, { recursive: true })).map(String);
  const stamp = first.id.split('-')[1]!;
  for (const n of names) assert.doesNotMatch(n, new RegExp(`authw|${stamp.slice(0, 9)}`), n);

  // a chunk altered with its checksum recomputed: the keyed verify names it
  const chunks = names.filter((n) => /^chunks\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(n));
  const victim = chunks[chunks.length >> 1]!;
  const vf = path.join(DIR, victim);
  const good = await fs.readFile(vf);
  const bad = Buffer.from(good);
  bad[30]! ^= 0x04;
  createHash('sha256').update(bad.subarray(0, bad.length - 32)).digest().copy(bad, bad.length - 32);
  await fs.writeFile(vf, bad);
  const v = await RA(['store', 'verify', ...S]);
  assert.notEqual(v.code, 0);
  oneLine(v);
  assert.match(v.stderr, new RegExp(`chunk ${path.basename(victim).slice(0, 12)}… of checkpoint authw-\\S+ is corrupted: authentication failed`));
  await fs.writeFile(vf, good);

  // the newest checkpoint's metadata deleted on the store host: restore --latest names it, restores nothing
  await TA(['rm', '-f', 'authw']);
  const key = deriveKey(Buffer.from(readFileSync(KEY, 'utf8').trim(), 'hex'));
  const meta = path.join(DIR, 'snapshots', `${snapshotName(second.id, key)}.meta`);
  const kept = await fs.readFile(meta);
  await fs.rm(meta);
  const lost = await RA(['restore', 'authw', '--latest', ...R]);
  assert.notEqual(lost.code, 0);
  oneLine(lost);
  assert.match(lost.stderr, new RegExp(`checkpoint ${second.id} of "authw" \\(taken \\S+\\) is in the index of ${STORE.replace(/[/.]/g, '\\$&')}, but its metadata is gone`));
  assert.deepEqual(leftovers(A, 'authw'), []);
  const ls = await RA(['store', 'ls', ...S]);
  assert.match(ls.stdout, new RegExp(`missing: ${second.id} \\(authw, taken`));
  await fs.writeFile(meta, kept);

  // the index of before the second checkpoint replayed: this host has seen a newer one
  const index2 = await fs.readFile(path.join(DIR, 'index'));
  await fs.writeFile(path.join(DIR, 'index'), index1);
  const rolled = await RA(['restore', 'authw', '--latest', ...R]);
  assert.notEqual(rolled.code, 0);
  oneLine(rolled);
  assert.match(rolled.stderr, /the index of store auth-c:\S+ is #1, but this host has seen #2: the store was rolled back/);
  assert.deepEqual(leftovers(A, 'authw'), []);
  await fs.writeFile(path.join(DIR, 'index'), index2);

  // put right: the newest is restored
  const ok = await RA(['--json', 'restore', 'authw', '--latest', ...R]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as { id: string }).id, second.id);
  const c0 = await count();
  assert.ok(c0 > atFirst + 5, `restored the second checkpoint (${c0} > ${atFirst + 5})`);
  await eventually(async () => (await count()) > c0 + 3, 10000);
  assert.deepEqual(leftovers(C, 'authw'), []);
});
