/**
 * The peer's disk, over real SSH with real CRIU: the pre-flight counts every
 * byte the peer will hold against the filesystem it goes to (its state root
 * here is a small tmpfs the test mounts), and `host check` says the same; a
 * disk that fills after the pre-flight (the estimate fit, the data did not)
 * rolls the move back with one clear line and leaves nothing on the peer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot, REPO } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { Rig } from '../../helpers/rig.js';
import { peerConfigOf, trustRoot } from '../../helpers/trust.js';

const A = tempRoot('tsm-spaceA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let S = '';
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'];
const MiB = 1 << 20;

before(async () => {
  const h = await rig.start('tsm-peer-s', '127.0.0.5');
  S = h.root;
  mkdirSync(S, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0711', 'tmpfs', S]);
  await trustRoot(peerConfigOf(S), A);
  const add = [...h.addCommand];
  const k = add.indexOf('--known-hosts') + 1;
  copyFileSync(add[k]!, path.join(A, 'known_hosts'));
  add[k] = path.join(A, 'known_hosts');
  await TA(add);
  // the same sshd, its agent filling the tmpfs after begin, the images staged on it too
  const fill = [...add];
  fill[2] = 'tsm-peer-s-fill';
  const c = fill.indexOf('--command') + 1;
  fill[c] = `env TSMIGRATE_STAGING=${S}/staging ${process.execPath} ${REPO}/dist/test/helpers/fault-agent.js --root ${S} --fault fill-after-begin --fill ${S}/.fill --leave ${256 << 10}`;
  await TA(fill);
  await importBusybox(A);
});
after(async () => {
  for (const n of ['big', 'full']) await cli(A, ['rm', '-f', n]);
  execFileSync('umount', ['-l', S]);
  rig.stopAll('tsm-peer-s');
  rmSync(A, { recursive: true, force: true });
});

async function count(name: string): Promise<number> {
  return Number((await cliOk(A, ['exec', name, '--', 'cat', '/tmp/count'])).trim());
}
function lastJournal(): string {
  const dir = path.join(A, 'migrations/outgoing');
  return readFileSync(path.join(dir, readdirSync(dir).sort().pop()!), 'utf8');
}
async function runsHereOnly(name: string): Promise<void> {
  const ps = JSON.parse(await cliOk(A, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((r) => r.name === name)?.state, 'running');
  const c = await count(name);
  await eventually(async () => (await count(name)) > c + 2, 10000);
  assert.deepEqual(leftovers(S, name), [], 'nothing of it on the peer');
  const staging = path.join(S, 'staging');
  assert.deepEqual(existsSync(staging) ? readdirSync(staging).filter((f) => f.startsWith('move-')) : [], [], 'no staging left on the peer');
  for (const f of existsSync(path.join(S, 'migrations/incoming')) ? readdirSync(path.join(S, 'migrations/incoming')) : []) {
    assert.match(readFileSync(path.join(S, 'migrations/incoming', f), 'utf8'), /"phase": ?"aborted"/, f);
  }
}

test('a peer state root too small for the upper layer: refused before the freeze with the filesystem, MiB needed and free; host check says the same', async () => {
  await TA(['run', '-d', 'big', '--image', 'busybox', '--', 'sh', '-c', `dd if=/dev/zero of=/big bs=1M count=40 2>/dev/null; ${counter[2]}`]);
  await eventually(async () => (await count('big').catch(() => 0)) > 2, 30000);
  const check = await cli(A, ['--config', CFG, '--json', 'host', 'check', 'tsm-peer-s', 'big'], { env });
  assert.equal(check.code, 1, check.stderr);
  const pre = (JSON.parse(check.stdout) as { preflight: { ok: boolean; problems: Array<{ check: string; message: string; fix: string }> } }).preflight;
  const disk = pre.problems.filter((p) => p.check === 'disk');
  assert.equal(disk.length, 1, JSON.stringify(pre.problems));
  const m = new RegExp(`^the peer's tmpfs at ${S} has (\\d+) MiB free, the move needs (\\d+) MiB there \\(upper layer (\\d+) MiB, (?:logs (\\d+) MiB, )?image (\\d+) MiB, margin (\\d+) MiB\\)$`).exec(disk[0]!.message);
  assert.ok(m, disk[0]!.message);
  const [free, need, upper, logs, image, margin] = [m[1], m[2], m[3], m[4] ?? '0', m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const st = statfsSync(S);
  assert.equal(free, Math.floor((Number(st.bavail) * Number(st.bsize)) / MiB), 'what is free on the small tmpfs');
  assert.ok(upper >= 40 && upper <= 41, `the upper layer holds the 40 MiB file (${upper} MiB)`);
  assert.ok(image >= 2 && image < 20, `busybox sent as a tar and unpacked (${image} MiB)`);
  assert.ok(margin >= 64, `margin ${margin}`);
  assert.ok(need >= upper + logs + image + margin - 4 && need <= upper + logs + image + margin, `need ${need} is the sum of its parts`);
  assert.match(disk[0]!.fix, new RegExp(`^free at least ${need - free - 1}|${need - free} MiB under ${S} on the peer`));
  // the plain output prints the same problem and the space line
  const plain = await cli(A, ['--config', CFG, 'host', 'check', 'tsm-peer-s', 'big'], { env });
  assert.ok(plain.stdout.includes(`disk: ${disk[0]!.message}`), plain.stdout);
  assert.match(plain.stdout, new RegExp(`space: ${S} \\(tmpfs\\): needs ${need} MiB .*, ${free} MiB free: DOES NOT FIT`));
  // the move asks the same question and gets the same answer, before anything is frozen
  const r = await cli(A, ['--config', CFG, 'move', 'big', 'tsm-peer-s'], { env, timeoutMs: 120000 });
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(disk[0]!.message), r.stderr);
  assert.doesNotMatch(lastJournal(), /"frozen"/, 'never frozen');
  await runsHereOnly('big');
  await TA(['rm', '-f', 'big']);
});

test('the peer disk filling after the pre-flight: the move rolls back with one line naming the peer, the filesystem and the fix; nothing left there', async () => {
  await TA(['run', '-d', 'full', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count('full').catch(() => 0)) > 2, 30000);
  // room for the estimate (the images staged here too, and the margin) until the agent fills it
  execFileSync('mount', ['-o', 'remount,size=160m', S]);
  const ok = await cli(A, ['--config', CFG, 'host', 'check', 'tsm-peer-s-fill', 'full'], { env });
  assert.equal(ok.code, 0, `the estimate fits: ${ok.stdout}${ok.stderr}`);
  try {
    const r = await cli(A, ['--config', CFG, 'move', 'full', 'tsm-peer-s-fill'], { env, timeoutMs: 120000 });
    assert.notEqual(r.code, 0);
    const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, new RegExp(`tsm-peer-s-fill: no space left on the peer's tmpfs at ${S} \\(\\d+ MiB free now\\).*free space under ${S} on the peer`));
    assert.doesNotMatch(r.stderr, /report a tsmigrate bug/);
    // the images did not fit: the container was frozen, and thawed by the rollback
    assert.match(lastJournal(), /"frozen"[\s\S]*"aborted"/);
  } finally {
    rmSync(path.join(S, '.fill'), { force: true });
  }
  await runsHereOnly('full');
  await TA(['rm', '-f', 'full']);
});
