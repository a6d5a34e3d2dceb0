/**
 * CRIU never hangs us: a dump or restore that stops making progress is killed
 * (with everything it forked) once its watchdog fires, the command returns,
 * the container runs on thawed, and nothing is left behind.
 *
 * Two ways to stall CRIU: a fake CRIU that hangs (test/fixtures/fake-criu-hang.py,
 * in TSMIGRATE_CRIU; every other operation runs the real one), and the real
 * CRIU stopped with SIGSTOP at a known point of a real dump or restore by an
 * action script (test/fixtures/criu-stall-action.sh) that a CRIU config file
 * (CRIU_CONFIG_FILE) hands it: after a dump (tasks seized and dumped, the
 * network locked), or while a restore sets up the namespaces (a tree half made).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { moveContainer } from '../../../src/move/move.js';
import { createRuntime, cgroupParentFor } from '../../../src/runtime/context.js';
import { peerConfigOf, trustRoot } from '../../helpers/trust.js';
import { CLI, REPO, cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { inProcessPeer } from '../../helpers/inprocess-peer.js';
import { leftovers } from '../../helpers/leftovers.js';

const A = tempRoot('tsm-deadline-A-');
const B = tempRoot('tsm-deadline-B-');
const work = mkdtempSync(path.join(tmpdir(), 'tsm-deadline-'));
const FAKE = path.join(REPO, 'test/fixtures/fake-criu-hang.py');
const ACTION = path.join(REPO, 'test/fixtures/criu-stall-action.sh');
const CONF = path.join(work, 'criu.conf');
/** short limits: CRIU is killed 2 s after it last moved, or 4 s after it started */
const STALL = ['--criu-deadline', '30,stall=2'];
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'];
const T = (root: string, args: string[], env: NodeJS.ProcessEnv = {}) => cliOk(root, args, { env, timeoutMs: 120000 });

before(async () => {
  writeFileSync(CONF, `action-script ${ACTION}\n`);
  await importBusybox(A);
  await importBusybox(B);
});
after(async () => {
  for (const r of [A, B]) for (const n of ['hang', 'stop', 'rst', 'mvd', 'mvr', 'dmn']) await cli(r, ['rm', '-f', n]);
  for (const d of [A, B, work]) rmSync(d, { recursive: true, force: true });
});

let seq = 0;
/** env for the fake CRIU hanging at `op` */
function fake(op: 'dump' | 'restore', mode: 'silent' | 'chatty') {
  const pids = path.join(work, `fake-${++seq}.pids`);
  return { env: { TSMIGRATE_CRIU: FAKE, FAKE_CRIU_HANG: op, FAKE_CRIU_MODE: mode, FAKE_CRIU_PIDS: pids }, pids };
}
/** env for the real CRIU stopped at `action` */
function stopAt(action: string) {
  const pids = path.join(work, `stall-${++seq}.pids`);
  return { env: { CRIU_CONFIG_FILE: CONF, TSM_TEST_STALL_AT: action, TSM_TEST_STALL_PIDS: pids }, pids };
}
function pidsIn(file: string): number[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split(/\s+/).filter(Boolean).map(Number) : [];
}
const alive = (pid: number) => {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX]/.test(st);
  } catch {
    return false;
  }
};
async function assertAllDead(file: string, what: string) {
  const pids = pidsIn(file);
  assert.ok(pids.length > 0, `${what} recorded its pids`);
  await eventually(async () => pids.every((p) => !alive(p)), 5000).catch(() => assert.fail(`${what}: still alive: ${pids.filter(alive).join(' ')}`));
}
/** the counter, read from the container's upper layer (an exec per sample costs a CLI start) */
async function count(root: string, name: string): Promise<number> {
  return Number(readFileSync(path.join(root, 'containers', name, 'rootfs/upper/tmp/count'), 'utf8').trim() || 0);
}
async function statusOf(root: string, name: string): Promise<string | undefined> {
  return (JSON.parse(await T(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === name)?.state;
}
/** running, its freezer thawed, its counter moving, no CRIU lock in its network namespace */
async function assertRunsOn(root: string, name: string) {
  assert.equal(await statusOf(root, name), 'running');
  const freezer = path.join('/sys/fs/cgroup/freezer', cgroupParentFor(path.resolve(root)), name, 'freezer.state');
  if (existsSync(freezer)) assert.equal(readFileSync(freezer, 'utf8').trim(), 'THAWED');
  const c = await count(root, name);
  await eventually(async () => (await count(root, name)) > c + 2, 10000);
  const st = JSON.parse(readFileSync(path.join(root, 'containers', name, 'state.json'), 'utf8')) as { initPid: number };
  const rules = execFileSync('nsenter', [`--net=/proc/${st.initPid}/ns/net`, '--', 'iptables', '-S'], { encoding: 'utf8' });
  assert.doesNotMatch(rules, /CRIU/, 'the network lock was taken away');
  // a TCP round trip over loopback (the lock drops everything, lo included)
  // (a fresh port each time; connected to once /proc/net/tcp shows it listening, again until the
  // listener wrote what it got: busybox nc loses it now and then. The listener goes at the end: a
  // process of exec's session left in the container would keep CRIU from dumping it.)
  const script = 'p=$((20000 + $$ % 20000)); h=$(printf %04X $p); rm -f /tmp/got; '
    + '(while true; do nc -l -p $p >> /tmp/got & echo $! > /tmp/nc.pid; wait $!; done) >/dev/null 2>&1 & L=$!; '
    + 'for i in $(seq 50); do grep -q ":$h [0-9A-F]*:0000 0A" /proc/net/tcp /proc/net/tcp6 && break; sleep 0.1; done; '
    + 'for i in $(seq 10); do echo hi | nc -w 1 127.0.0.1 $p; sleep 0.1; grep -q hi /tmp/got && break; done; '
    + 'kill $L; sleep 0.1; kill $(cat /tmp/nc.pid) 2>/dev/null; cat /tmp/got';
  const echo = await T(root, ['exec', name, '--', 'sh', '-c', script]);
  assert.match(echo, /^hi$/m, 'loopback works');
}
/** no staging, no freeze marker, no checkpoint of `name` */
async function assertNoCheckpointLeft(root: string, name: string) {
  for (const base of ['/dev/shm/tsmigrate', path.join(root, 'staging')]) {
    const mine = existsSync(base) ? readdirSync(base).filter((d) => d.startsWith(`${name}-`)) : [];
    assert.deepEqual(mine, [], `no staging left in ${base}`);
  }
  assert.ok(!existsSync(path.join(root, 'containers', name, 'checkpoint-freeze.pid')), 'no freeze marker');
  assert.deepEqual(JSON.parse(await T(root, ['--json', 'checkpoints', name])), []);
}
/** the log the message names exists and holds its quoted last line */
function assertLogKept(stderr: string) {
  const m = /\(CRIU log: (\S+)\)/.exec(stderr);
  assert.ok(m, `the message names the log: ${stderr}`);
  const last = /its last log lines: .*"([^"]+)"; /.exec(stderr)?.[1];
  assert.ok(last && readFileSync(m[1]!, 'utf8').includes(last.replace(/\\t|\\x09/g, '\t')), `the log at ${m[1]} holds the quoted line`);
}
function mntnsDirs(): string[] {
  return readdirSync('/tmp').filter((n) => n.startsWith('.criu.mntns.'));
}

/**
 * `ARGS... NAME` (a checkpoint) with CRIU made to stall (`run`'s env): it fails with one
 * line matching `re` within `withinMs`, CRIU and what it forked are gone, the
 * container runs thawed with its network unlocked, and nothing is left.
 */
async function stalledCheckpoint(name: string, args: string[], run: { env: NodeJS.ProcessEnv; pids: string }, re: RegExp, what: string, withinMs: number) {
  const t0 = Date.now();
  const r = await cli(A, [...args, name], { env: run.env, timeoutMs: 60000 });
  const ms = Date.now() - t0;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, re);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  assert.ok(ms < withinMs, `returned after ${ms} ms`);
  console.log(`# ${what}: checkpoint returned after ${ms} ms`);
  assertLogKept(r.stderr);
  await assertAllDead(run.pids, what);
  await assertRunsOn(A, name);
  await assertNoCheckpointLeft(A, name);
}

test('(a) a fake CRIU dump that hangs: checkpoint returns once it stopped making progress, the container runs thawed, nothing left', async () => {
  await T(A, ['run', '-d', 'hang', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'hang')) > 3);
  const silent = /criu dump failed: CRIU stopped making progress \(nothing logged, written or computed for 2(\.\d)? s\).*its last log lines: .*"\(00\.000200\) waiting for something that never comes"; the container was thawed and runs on/;
  await stalledCheckpoint('hang', [...STALL, 'checkpoint'], fake('dump', 'silent'), silent, 'a hanging fake dump', 10_000);
  // one that keeps logging is stopped by the hard deadline instead
  const busy = /CRIU stopped making progress within its deadline \(4 s: 4 s \+ 0 s\/GiB x \d+ (KiB|MiB)\) and was killed after 4(\.\d)? s; its last log lines: .*still busy/;
  await stalledCheckpoint('hang', ['--criu-deadline', '4+0/GiB,stall=2', 'checkpoint'], fake('dump', 'chatty'), busy, 'a busy fake dump past its 4 s deadline', 12_000);
  // and the next checkpoint, with the real CRIU, works
  await T(A, ['checkpoint', 'hang']);
  await T(A, ['rm', '-f', 'hang']);
});

test('(b) the real CRIU stopped after dumping (tasks seized, network locked): killed, the lock taken away, the container runs, a retry works', async () => {
  await T(A, ['run', '-d', 'stop', '--image', 'busybox', '--memory', '64m', '--', ...counter]);
  await eventually(async () => (await count(A, 'stop')) > 3);
  const re = /criu dump failed: CRIU stopped making progress .*its last log lines: .*Running post-dump scripts/;
  await stalledCheckpoint('stop', [...STALL, 'checkpoint', '--tcp-established'], stopAt('post-dump'), re, 'the real dump stopped at post-dump', 12_000);
  await T(A, ['checkpoint', 'stop']);
  await T(A, ['rm', '-f', 'stop']);
});

test('(c) restores that stall, a fake one past its deadline and the real one stopped half-way: everything the restore made is removed', async () => {
  await T(A, ['run', '-d', 'rst', '--image', 'busybox', '--net', 'none', '--', ...counter]);
  await eventually(async () => (await count(A, 'rst')) > 3);
  await T(A, ['checkpoint', 'rst']);
  const id = (JSON.parse(await T(A, ['--json', 'checkpoints', 'rst'])) as Array<{ id: string }>)[0]!.id;
  const dirsBefore = mntnsDirs();
  for (const [what, run] of [
    ['a fake restore that keeps logging', fake('restore', 'chatty')],
    ['the real restore stopped while it sets up the namespaces', stopAt('setup-namespaces')],
  ] as const) {
    const t0 = Date.now();
    const r = await cli(A, ['--criu-deadline', '4+0/GiB,stall=2', 'restore', id, '--name', 'rst2'], { env: run.env, timeoutMs: 60000 });
    const ms = Date.now() - t0;
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /criu restore failed: CRIU stopped making progress/, what);
    assert.match(r.stderr, /everything the restore made was removed/, what);
    assert.ok(ms < 12_000, `${what}: returned after ${ms} ms`);
    console.log(`# ${what}: restore returned after ${ms} ms`);
    assertLogKept(r.stderr);
    await assertAllDead(run.pids, what);
    assert.deepEqual(leftovers(A, 'rst2'), [], `${what}: nothing left`);
    assert.equal(await statusOf(A, 'rst2'), undefined);
    const shims = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(path.join(A, 'containers', 'rst2')));
    assert.deepEqual(shims, [], `${what}: no supervisor left`);
    assert.deepEqual(mntnsDirs().filter((d) => !dirsBefore.includes(d)), [], `${what}: no /tmp/.criu.mntns left`);
    assert.deepEqual(readdirSync(path.join(A, 'containers')).filter((d) => d === 'rst2'), []);
  }
  // the same checkpoint restores when nothing stalls
  await T(A, ['restore', id, '--name', 'rst2']);
  await assertRunsOn(A, 'rst2');
  await T(A, ['rm', '-f', 'rst2']);
  await T(A, ['rm', '-f', 'rst']);
});

test('(d) a move whose dump stalls, and one whose restore on the peer stalls: rolled back, the container runs on the source, nothing on the peer', async () => {
  const rtA = createRuntime({ root: A, criuDeadline: { baseS: 30, perGiBS: 0, stallS: 2 } });
  const peer = inProcessPeer(B);
  await trustRoot(peerConfigOf(B), A);
  await T(A, ['run', '-d', 'mvd', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'mvd')) > 3);
  for (const [what, action] of [['the dump', 'post-dump'], ["the peer's restore", 'setup-namespaces']] as const) {
    const s = stopAt(action);
    Object.assign(process.env, s.env);
    const t0 = Date.now();
    try {
      await assert.rejects(moveContainer(rtA, { name: 'mvd', host: 'B', compress: 'off', warmMemory: false }, peer.connect), (e: Error) => {
        assert.match(e.message, /CRIU stopped making progress/, what);
        return true;
      });
    } finally {
      for (const k of Object.keys(s.env)) delete process.env[k];
    }
    console.log(`# a move where ${what} stalled: rolled back after ${Date.now() - t0} ms`);
    await assertAllDead(s.pids, what);
    await assertRunsOn(A, 'mvd');
    assert.deepEqual(leftovers(B, 'mvd'), [], `${what}: nothing on the peer`);
  }
  // with nothing stopping CRIU, the move goes through
  await moveContainer(rtA, { name: 'mvd', host: 'B', compress: 'off', warmMemory: false }, peer.connect);
  assert.equal(await statusOf(B, 'mvd'), 'running');
  await T(B, ['rm', '-f', 'mvd']);
});

test('(e) the daemon: a scheduled checkpoint whose CRIU hangs is stopped, logged, and the container runs on', async () => {
  await T(A, ['run', '-d', 'dmn', '--image', 'busybox', '--', ...counter]);
  await T(A, ['schedule', 'add', 'dmn', '--every', '1h', '--keep-last', '1']);
  const f = fake('dump', 'silent');
  let logs = '';
  const d = spawn(process.execPath, [CLI, '--root', A, ...STALL, 'daemon'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...f.env } });
  d.stderr.setEncoding('utf8').on('data', (x: string) => (logs += x));
  try {
    await eventually(async () => /schedule dmn: failed: criu dump failed: CRIU stopped making progress/.test(logs), 30000);
  } finally {
    d.kill('SIGTERM');
    await new Promise((r) => d.once('exit', r));
  }
  await assertAllDead(f.pids, 'the fake CRIU');
  await assertRunsOn(A, 'dmn');
  await T(A, ['schedule', 'rm', 'dmn']);
  await T(A, ['rm', '-f', 'dmn']);
});
