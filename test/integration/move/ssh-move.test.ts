/**
 * `tsmigrate move` through the real CLI, over real SSH (an sshd on loopback
 * started by scripts/local-hosts.sh), with real CRIU, cgroups and namespaces:
 * what a move carries (state, logs, the OOM record, the address and TCP
 * connections) and the pre-flight alone. Faults injected into moves are in
 * faults.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { runMove } from '../../helpers/fault-rig.js';
import { importBusybox, debianRootfs } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { Rig } from '../../helpers/rig.js';
import { COUNTER_SERVER, connectCounter } from '../../helpers/tcp-counter.js';
import { assertLocalRoute } from '../../../src/network/guard.js';

const A = tempRoot('tsm-srcA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
let hostCmd: string[] = [];
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[], extra: NodeJS.ProcessEnv = {}) => cliOk(A, ['--config', CFG, ...args], { env: { ...env, ...extra }, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });
// the count is renamed into place: a read never sees the file half-written
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.t; mv /tmp/count.t /tmp/count; echo tick $i; sleep 0.1; done'];

before(async () => {
  const h = await rig.start('tsm-peer-b', '127.0.0.2', [A]);
  B = h.root;
  hostCmd = h.addCommand;
  // our own copy of the peer's host key: the rig rewrites its file when it rekeys
  const i = hostCmd.indexOf('--known-hosts') + 1;
  const { copyFileSync } = await import('node:fs');
  copyFileSync(hostCmd[i]!, path.join(A, 'known_hosts'));
  hostCmd[i] = path.join(A, 'known_hosts');
  await TA(hostCmd);
  await importBusybox(A);
});
after(async () => {
  for (const n of ['sm', 'lg', 'tcp', 'flt']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll('tsm-peer-b');
  rmSync(A, { recursive: true, force: true });
});

async function count(root: string, name: string): Promise<number> {
  return Number((await cliOk(root, ['exec', name, '--', 'cat', '/tmp/count'])).trim());
}
async function stateOf(root: string, name: string): Promise<string | undefined> {
  return (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === name)?.state;
}
async function assertOneCopy(name: string, where: 'A' | 'B') {
  const [here, there] = where === 'A' ? [A, B] : [B, A];
  assert.equal(await stateOf(here, name), 'running', `running on ${where}`);
  assert.equal(await stateOf(there, name), undefined, 'no copy on the other host');
  assert.deepEqual(leftovers(there, name), [], 'nothing left on the other host');
  const inc = path.join(B, 'migrations/incoming');
  if (existsSync(inc)) {
    for (const f of readdirSync(inc)) {
      const m = JSON.parse(readFileSync(path.join(inc, f), 'utf8')) as { phase: string };
      assert.ok(['committed', 'aborted'].includes(m.phase), `peer migration ${f} is ${m.phase}`);
    }
  }
  const c = await count(here, name);
  await eventually(async () => (await count(here, name)) > c + 2, 10000);
}

/** `tsmigrate --json move NAME tsm-peer-b` from A (fault-rig.ts's runner). */
function moveCli(name: string) {
  return runMove(['--root', A, '--config', CFG, '--json', 'move', name, 'tsm-peer-b']);
}

test('move over SSH: the container runs on B with its state, the report and history have the figures', async () => {
  await TA(['run', '-d', 'sm', '--image', 'busybox', '--memory', '64m', '--', ...counter]);
  await eventually(async () => (await count(A, 'sm')) > 5);
  const r = await moveCli('sm');
  assert.equal(r.code, 0, r.stderr);
  const done = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; report?: { downtime: { totalMs: number; freezeMs: number; dumpMs: number; transferMs: number; restoreMs: number; resumeMs: number }; bytes: { images: number }; warmMemory: { sourceBytes: number; peerBytes: number }; restoreParts: { duringTransfer: boolean; criuMs: number; criuAfterLastByteMs?: number } } }).find((e) => e.event === 'done');
  const d = done!.report!.downtime;
  // the memory the downtime needs was faulted in before the freeze, on both sides (twice the container's on the peer: images and restore)
  const w = done!.report!.warmMemory;
  assert.ok(w.sourceBytes > 0 && w.peerBytes >= 2 * w.sourceBytes - (1 << 20), `warm memory ${JSON.stringify(w)}`);
  assert.ok(d.totalMs >= d.freezeMs + d.dumpMs + d.transferMs + d.restoreMs + d.resumeMs - 1, 'the parts add up');
  assert.ok(done!.report!.bytes.images > 0);
  // by default the peer restores while the images arrive (tmpfs has room here)
  assert.equal(done!.report!.restoreParts.duringTransfer, true, 'restored while the images arrived');
  assert.ok(done!.report!.restoreParts.criuMs > 0, 'criu restore ran on the peer');
  const criuAfter = done!.report!.restoreParts.criuAfterLastByteMs;
  assert.ok(criuAfter !== undefined && criuAfter >= 0 && criuAfter <= done!.report!.downtime.restoreMs, `CRIU's part of the restore after the last byte (${criuAfter} ms) is within the restore phase (${done!.report!.downtime.restoreMs} ms)`);
  await assertOneCopy('sm', 'B');
  assert.ok((await count(B, 'sm')) > 5, 'the count went on from where it was');
  const hist = JSON.parse(await TA(['--json', 'history'])) as unknown[];
  assert.equal(hist.length, 1);
  await TB(['rm', '-f', 'sm']);
});

test('move over SSH hands over the log, rotated files too, and the OOM record; the peer rotates under the same limit', async () => {
  // a child OOM-killed at 32 MiB, a burst that fills the three 4 KiB files, then a slow tick
  const hog = 'x=$(head -c 1048576 /dev/zero | tr "\\0" a); s=""; i=0; while [ $i -lt 100 ]; do s="$s$x"; i=$((i+1)); done';
  const burst = (word: string) => `i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo "${word} $i ${'x'.repeat(100)}"; done`;
  await TA(['run', '-d', 'lg', '--image', 'busybox', '--memory', '32m', '--log-max-size', '4k', '--log-max-files', '3', '-e', `HOG=${hog}`, '--', 'sh', '-c',
    `sh -c "$HOG"; ${burst('burst')}; i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo "tick $i"; sleep 0.5; done`]);
  const logDir = (root: string) => path.join(root, 'containers', 'lg');
  const logFiles = (root: string) => readdirSync(logDir(root)).filter((f) => /^container\.log/.test(f)).sort();
  const lines = async (root: string, word: string) => [...(await cliOk(root, ['logs', 'lg'])).matchAll(new RegExp(`^${word} (\\d+)`, 'gm'))].map((m) => Number(m[1]));
  const consecutive = (ns: number[]) => ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);
  const inspect = async (root: string) => JSON.parse(await cliOk(root, ['inspect', 'lg'])) as { config: { log: unknown }; oomKills: number; lastOomKillAt: string };
  await eventually(async () => (await count(A, 'lg')) > 2, 30000);
  assert.deepEqual(logFiles(A), ['container.log', 'container.log.1', 'container.log.2']);
  const onA = await inspect(A);
  assert.equal(onA.oomKills, 1);
  const r = await moveCli('lg');
  assert.equal(r.code, 0, r.stderr);
  const report = (r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; report?: { bytes: { logs: number } } }).find((e) => e.event === 'done'))!.report!;
  assert.ok(report.bytes.logs > 2 * 4096, `the log went along (${report.bytes.logs} bytes)`);
  await assertOneCopy('lg', 'B');
  // on B: the burst's newest lines and every tick, from before the move to after it, in order
  const c = await count(B, 'lg');
  const [bursts, ticks] = [await lines(B, 'burst'), await lines(B, 'tick')];
  assert.ok(bursts.length > 30 && bursts.at(-1) === 100 && consecutive(bursts), `burst lines ${bursts[0]}..${bursts.at(-1)}`);
  assert.ok(consecutive(ticks), `ticks in order: ${ticks.join(' ')}`);
  assert.ok(ticks[0] === 1 && ticks.at(-1)! >= c, `ticks ${ticks[0]}..${ticks.at(-1)}, the counter at ${c}`);
  const onB = await inspect(B);
  assert.deepEqual(onB.config.log, { maxBytes: 4096, maxFiles: 3 });
  assert.deepEqual([onB.oomKills, onB.lastOomKillAt], [1, onA.lastOomKillAt], 'the OOM record came along');
  // B's supervisor rotates under the same limit: 11 KB more on the init's stdout push the moved lines out
  await TB(['exec', 'lg', '--', 'sh', '-c', `(${burst('extra')}) > /proc/1/fd/1`]);
  await eventually(async () => (await lines(B, 'extra')).at(-1) === 100, 10000);
  assert.deepEqual(await lines(B, 'burst'), [], 'the lines from A were rotated out');
  assert.ok((await cliOk(B, ['logs', 'lg'])).length <= 3 * 4096);
  assert.deepEqual(logFiles(B), ['container.log', 'container.log.1', 'container.log.2']);
  for (const f of logFiles(B)) assert.ok(statSync(path.join(logDir(B), f)).size <= 4096, f);
  await TB(['rm', '-f', 'lg']);
});

test('--net bridge: the IP is kept and a TCP client connected from the host stays connected across the move', async () => {
  await TA(['image', 'import', 'debian', debianRootfs()]);
  await TA(['run', '-d', 'tcp', '--image', 'debian', '--net', 'bridge', '--', 'python3', '-u', '-c', COUNTER_SERVER]);
  const ip = (JSON.parse(await TA(['--json', 'ps'])) as Array<{ name: string; ip: string }>).find((r) => r.name === 'tcp')!.ip;
  await assertLocalRoute(ip, 'tsm0');
  const client = await connectCounter(ip);
  const { lines } = client;
  try {
    await eventually(async () => lines.length > 10);
    const r = await moveCli('tcp');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"tcpEstablished":true/);
    const before = lines.length;
    await eventually(async () => lines.length > before + 10, 30000);
    assert.equal(client.closed(), false, 'the connection was not closed');
    for (let i = 1; i < lines.length; i++) assert.equal(lines[i], lines[i - 1]! + 1, 'no gap and no repeat in the stream');
    assert.equal((JSON.parse(await TB(['--json', 'ps'])) as Array<{ name: string; ip: string }>).find((x) => x.name === 'tcp')?.ip, ip);
  } finally {
    client.stop();
  }
  await TB(['rm', '-f', 'tcp']);
  await sleep(100);
});

test('host check: the pre-flight alone, with a clear problem when the name is taken on the peer', async () => {
  await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  const ok = JSON.parse(await TA(['--json', 'host', 'check', 'tsm-peer-b', 'flt'])) as { hello: { criu: { ok: boolean } }; preflight: { ok: boolean; needImage: boolean } };
  assert.equal(ok.hello.criu.ok, true);
  assert.equal(ok.preflight.ok, true);
  await cliOk(B, ['image', 'import', 'busybox', (await import('../../helpers/images.js')).busyboxRootfs()]).catch(() => undefined);
  await cliOk(B, ['run', '-d', 'flt', '--image', 'busybox', '--', 'sleep', '100']);
  const bad = await cli(A, ['--config', CFG, 'host', 'check', 'tsm-peer-b', 'flt'], { env });
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /name: a container named "flt" already exists on the peer/);
  // a move is refused by the same check, with zero downtime
  const r = await moveCli('flt');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /already exists on the peer/);
  await TB(['rm', '-f', 'flt']);
  await assertOneCopy('flt', 'A');
  await TA(['rm', '-f', 'flt']);
});
