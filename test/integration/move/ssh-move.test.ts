/**
 * `tsmigrate move` through the real CLI, over real SSH (an sshd on loopback
 * started by scripts/local-hosts.sh), with real CRIU, cgroups and namespaces.
 * After every injected failure: exactly one running copy, its state intact,
 * nothing left behind on either host, and a retry succeeds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot, CLI, FAULT_CLI } from '../../helpers/cli.js';
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
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done'];

before(async () => {
  const h = await rig.start('tsm-peer-b', '127.0.0.2');
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

/** Run `tsmigrate --json move` and call onEvent for each progress line; resolves with the exit code and output. */
function moveCli(name: string, onEvent?: (e: { phase: string }, child: ReturnType<typeof spawn>) => void, fault?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const entry = fault ? [FAULT_CLI, '--fault', fault] : [CLI];
    const child = spawn(process.execPath, [...entry, '--root', A, '--config', CFG, '--json', 'move', name, 'tsm-peer-b'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const e = JSON.parse(line) as { event: string; phase: string };
          if (e.event === 'progress') onEvent?.(e, child);
        } catch {
          /* not json */
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
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
    `sh -c "$HOG"; ${burst('burst')}; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo "tick $i"; sleep 0.5; done`]);
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

test('the SSH connection killed mid-stream: rolled back, one copy on A, a retry succeeds', async () => {
  await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'flt')) > 3);
  const r = await moveCli('flt', (e) => {
    if (e.phase === 'transfer') {
      // kill the peer's sshd session (and with it the agent): the connection drops mid-stream
      try {
        execFileSync('pkill', ['-KILL', '-f', 'agent --stdio']);
      } catch {
        /* raced */
      }
    }
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /lost|closed|peer|connection/i);
  await eventually(async () => (await stateOf(B, 'flt')) === undefined, 15000);
  await assertOneCopy('flt', 'A');
  const again = await moveCli('flt');
  assert.equal(again.code, 0, again.stderr);
  await assertOneCopy('flt', 'B');
  await TB(['rm', '-f', 'flt']);
});

for (const fault of ['fail-restore', 'exit-in-restore']) {
  test(`the peer ${fault === 'fail-restore' ? 'failing its restore' : 'agent killed during restore'} (during the transfer): one copy on A, nothing left on B, a retry succeeds`, async () => {
    await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
    await eventually(async () => (await count(A, 'flt')) > 3);
    // the peer's agent runs with the fault (the host's command carries it)
    const cfg = readFileSync(CFG, 'utf8');
    await TA(['host', 'rm', 'tsm-peer-b']);
    const cmdIdx = hostCmd.indexOf('--command');
    const faulty = [...hostCmd];
    faulty[cmdIdx + 1] = `env TSMIGRATE_TEST_FAULT=${fault} ${hostCmd[cmdIdx + 1]}`;
    await TA(faulty);
    try {
      const r = await moveCli('flt');
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error')).length, 1, r.stderr);
    } finally {
      await TA(['host', 'rm', 'tsm-peer-b']);
      await TA(hostCmd);
    }
    void cfg;
    await eventually(async () => (await stateOf(B, 'flt')) === undefined && leftovers(B, 'flt').length === 0, 20000);
    await assertOneCopy('flt', 'A');
    const again = await moveCli('flt');
    assert.equal(again.code, 0, again.stderr);
    await assertOneCopy('flt', 'B');
    await TB(['rm', '-f', 'flt']);
  });
}

test('a corrupted byte in the stream is caught; SIGINT in each phase rolls back', async () => {
  await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'flt')) > 3);
  const c = await moveCli('flt', undefined, 'corrupt-images');
  assert.notEqual(c.code, 0);
  assert.match(c.stderr, /corrupt|invalid|tar|zstd/i);
  await assertOneCopy('flt', 'A');
  for (const phase of ['preflight', 'upper', 'dump', 'transfer', 'restore']) {
    const r = await moveCli('flt', (e, child) => e.phase === phase && child.kill('SIGINT'));
    assert.notEqual(r.code, 0, `interrupted in ${phase}`);
    await eventually(async () => (await stateOf(B, 'flt')) === undefined, 15000);
    await assertOneCopy('flt', 'A');
  }
  await TA(['rm', '-f', 'flt']);
});

test('two move commands at once: one wins, the other fails at once with busy', async () => {
  await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'flt')) > 3);
  let second: Promise<{ code: number; stderr: string; ms: number }> | undefined;
  const first = moveCli('flt', (e) => {
    if (e.phase === 'upper' && !second) {
      const t0 = Date.now();
      second = moveCli('flt').then((r) => ({ ...r, ms: Date.now() - t0 }));
    }
  });
  const r1 = await first;
  const r2 = await second!;
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 75, r2.stderr);
  assert.match(r2.stderr, /busy/);
  assert.ok(r2.ms < 5000, `the loser failed at once (${r2.ms} ms)`);
  await assertOneCopy('flt', 'B');
  await TB(['rm', '-f', 'flt']);
});

test('a changed host key refuses the move with both fingerprints, before anything is frozen', async () => {
  await TA(['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  rig.run('rekey', 'tsm-peer-b');
  try {
    const r = await moveCli('flt');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /host key .* changed: expected SHA256:\S+, presented SHA256:\S+/);
    await assertOneCopy('flt', 'A');
    const j = readdirSync(path.join(A, 'migrations/outgoing')).sort().pop()!;
    assert.doesNotMatch(readFileSync(path.join(A, 'migrations/outgoing', j), 'utf8'), /"frozen"/);
  } finally {
    // trust the new key again (as an operator would after checking it)
    await TA(['host', 'rm', 'tsm-peer-b']);
    const line = rig.run('line', 'tsm-peer-b').trim();
    const known = hostCmd[hostCmd.indexOf('--known-hosts') + 1]!;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(known, `${line}\n`);
    await TA(hostCmd);
  }
  await TA(['rm', '-f', 'flt']);
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
