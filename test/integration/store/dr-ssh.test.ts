/**
 * Disaster recovery across three local hosts over real SSH and real CRIU:
 * checkpoints of a container on A go to a store on C; A's copy is killed; it
 * is restored on B from C, skipping the newest checkpoint whose chunk was
 * corrupted on C's disk. Refused while it runs, and while a configured host
 * cannot be asked, unless --force.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { freePort, Rig } from '../../helpers/rig.js';

const A = tempRoot('tsm-drA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
let C = '';
const STORE_DIR = path.join(rig.dir, 'c-store');
const STORE = `dr-c:${STORE_DIR}`;
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
const RA = (args: string[]) => cli(A, ['--config', CFG, ...args], { env, timeoutMs: 300000 });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'];

before(async () => {
  for (const [name, addr] of [['dr-b', '127.0.0.5'], ['dr-c', '127.0.0.6']] as const) {
    const h = await rig.start(name, addr, [A]);
    if (name === 'dr-b') B = h.root;
    else C = h.root;
    const cmd = [...h.addCommand];
    const i = cmd.indexOf('--known-hosts') + 1;
    const own = path.join(A, `known_hosts.${name}`);
    copyFileSync(cmd[i]!, own);
    cmd[i] = own;
    await TA(cmd);
    if (name === 'dr-b') {
      // a configured host that is down: nothing listens there
      const port = await freePort('127.0.0.7');
      const id = cmd[cmd.indexOf('--identity') + 1]!;
      await TA(['host', 'add', 'dr-gone', `ssh://root@127.0.0.7:${port}`, '--identity', id, '--known-hosts', own]);
    }
  }
  await importBusybox(A);
});
after(async () => {
  await cli(A, ['rm', '-f', 'drw']);
  if (B) await cli(B, ['rm', '-f', 'drw']);
  rig.stopAll('dr-b', 'dr-c');
  rmSync(A, { recursive: true, force: true });
});

const count = async (root: string) => Number((await cliOk(root, ['exec', 'drw', '--', 'cat', '/tmp/count'])).trim());

test('checkpoints to a store on C, the container killed on A, restored on B with --latest skipping a corrupted checkpoint', async () => {
  await TA(['run', '-d', 'drw', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A)) > 3);
  const beforeFirst = await count(A);
  const first = JSON.parse(await TA(['--json', 'checkpoint', 'drw', '--store', STORE])) as { id: string; addedBytes: number };
  const atFirst = await count(A);
  await eventually(async () => (await count(A)) > atFirst + 10);
  const second = JSON.parse(await TA(['--json', 'checkpoint', 'drw', '--store', STORE])) as { id: string; addedBytes: number };
  // (dedup is asserted on a 256 MiB container in local-store.test.ts; a busybox counter's few KiB of images change throughout)
  assert.ok(first.addedBytes > 0 && second.addedBytes > 0);
  const ls = JSON.parse(await TA(['--json', 'store', 'ls', '--store', STORE])) as { checkpoints: Array<{ id: string }> };
  assert.deepEqual(ls.checkpoints.map((c) => c.id), [first.id, second.id]);
  // the store lives on C's disk, root-only; C runs no container
  assert.equal(readFileSync(path.join(STORE_DIR, 'store.json'), 'utf8').includes('tsmigrate-store/2'), true);
  assert.deepEqual(leftovers(C, 'drw'), []);

  // running on A: refused
  const running = await RA(['restore', 'drw', '--latest', '--from', STORE, '--on', 'dr-b']);
  assert.notEqual(running.code, 0);
  assert.match(running.stderr, /"drw" is running on this host: restoring it would make a second copy/);

  // A's copy dies
  await TA(['rm', '-f', 'drw']);
  // a configured host cannot be asked: refused without --force, nothing created on B
  const gone = await RA(['restore', 'drw', '--latest', '--from', STORE, '--on', 'dr-b']);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /cannot tell whether "drw" still runs on dr-gone .*pass --force/);
  assert.equal(gone.stderr.trim().split('\n').length, 1, gone.stderr);
  assert.deepEqual(leftovers(B, 'drw'), []);

  // corrupt a chunk only the newest checkpoint uses, on C's disk
  const refs = (id: string) => {
    const b = readFileSync(path.join(STORE_DIR, 'snapshots', `${id}.refs`));
    const out: string[] = [];
    for (let i = 0; i < b.length; i += 32) out.push(b.subarray(i, i + 32).toString('hex'));
    return out;
  };
  const older = new Set(refs(first.id));
  const victim = refs(second.id).find((h) => !older.has(h))!;
  const vf = path.join(STORE_DIR, 'chunks', victim.slice(0, 2), victim);
  const obj = readFileSync(vf);
  obj[obj.length - 40]! ^= 0x01;
  writeFileSync(vf, obj);
  const verify = await RA(['store', 'verify', '--store', STORE]);
  assert.notEqual(verify.code, 0);
  assert.match(verify.stderr, /checksum mismatch/);

  const r = await RA(['--json', 'restore', 'drw', '--latest', '--from', STORE, '--on', 'dr-b', '--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`warning: checkpoint ${second.id} is corrupted`));
  const out = JSON.parse(r.stdout) as { id: string; host: string };
  assert.equal(out.id, first.id);
  assert.equal(out.host, 'dr-b');
  // exactly one copy, on B, counting on from the first checkpoint's state
  const c0 = await count(B);
  assert.ok(c0 >= beforeFirst && c0 < atFirst + 10, `B resumed from the first checkpoint (${c0}, checkpoint at ~${atFirst})`);
  await eventually(async () => (await count(B)) > c0 + 3, 10000);
  assert.deepEqual(leftovers(A, 'drw'), []);
  assert.deepEqual(leftovers(C, 'drw'), []);
  // and now that it runs on B, a second restore is refused even with the store intact
  const twice = await RA(['restore', 'drw', first.id, '--from', STORE, '--on', 'dr-c']);
  assert.notEqual(twice.code, 0);
  assert.match(twice.stderr, /(running on dr-b|cannot tell)/);
});
