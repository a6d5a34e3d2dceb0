/**
 * `tsmigrate daemon` with real CRIU: a schedule every 2 s with --keep-last 3
 * leaves exactly the three newest checkpoints, the workload never stops for
 * longer than a freeze, and a daemon killed in the middle of a checkpoint
 * (while the container is frozen) loses nothing and duplicates nothing when it
 * is started again.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { exited, startDaemon } from '../../helpers/daemon.js';
import { importBusybox } from '../../helpers/images.js';
import { acquireLock } from '../../../src/state/lock.js';
import { createRuntime } from '../../../src/runtime/context.js';

const root = tempRoot();
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 120000 });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.05; done'];
let logs = '';

after(async () => {
  await cli(root, ['rm', '-f', 'sched']);
  rmSync(root, { recursive: true, force: true });
});

const daemon = (): ChildProcess => startDaemon(root, (d) => (logs += d));
const runs = () => [...logs.matchAll(/^(\S+) schedule sched: (sched-\S+) \(frozen ([\d.]+) ms/gm)].map((m) => ({ at: Date.parse(m[1]!), id: m[2]!, frozenMs: Number(m[3]) }));

test('schedule every 2s --keep-last 3 under the daemon, killed mid-checkpoint and restarted', async () => {
  await importBusybox(root);
  await T(['run', '-d', 'sched', '--image', 'busybox', '--', ...counter]);
  const countFile = path.join(root, 'containers/sched/rootfs/upper/tmp/count');
  await eventually(async () => existsSync(countFile));
  // bad input first: refused, nothing recorded
  for (const [args, re] of [
    [['--every', '2x', '--keep-last', '3'], /invalid --every "2x"/],
    [['--every', '2s'], /keep at least one checkpoint/],
    [['--every', '2s', '--cron', '* * * * *', '--keep-last', '1'], /contradict/],
    [['--cron', '61 * * * *', '--keep-last', '1'], /minute/],
  ] as Array<[string[], RegExp]>) {
    const r = await cli(root, ['schedule', 'add', 'sched', ...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.deepEqual(JSON.parse(await T(['--json', 'schedule', 'ls'])), []);
  await T(['schedule', 'add', 'sched', '--every', '2s', '--keep-last', '3']);

  // sample the counter from the host, every 20 ms: the longest time it did not move
  let last = '';
  let lastChange = Date.now();
  let longestStall = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const v = (() => { try { return readFileSync(countFile, 'utf8'); } catch { return last; } })();
      const now = Date.now();
      if (v !== last) {
        longestStall = Math.max(longestStall, now - lastChange);
        last = v;
        lastChange = now;
      }
      await sleep(20);
    }
  })();

  let d = daemon();
  await eventually(async () => runs().length >= 3, 120000, 100);
  // a second daemon for the same root is refused at once
  const second = await cli(root, ['daemon'], { timeoutMs: 20000 });
  assert.notEqual(second.code, 0);
  assert.match(second.stderr, /another tsmigrate daemon runs for/);
  // kill it while a checkpoint holds the container frozen
  const marker = path.join(root, 'containers/sched/checkpoint-freeze.pid');
  await eventually(async () => existsSync(marker), 60000, 5);
  d.kill('SIGKILL');
  await exited(d);
  const atKill = runs().length;
  sampling = false;
  await sampler;
  const stallBeforeKill = longestStall;

  // restarted: it thaws the container, catches up once, goes on
  d = daemon();
  await eventually(async () => runs().length >= atKill + 3, 120000, 100);
  d.kill('SIGTERM');
  assert.equal(await exited(d), 0, logs);
  assert.match(logs, /was left frozen by an interrupted checkpoint .* thawing it/);

  const all = runs();
  assert.equal(new Set(all.map((r) => r.id)).size, all.length, 'no checkpoint twice');
  for (let i = 1; i < all.length; i++) assert.ok(all[i]!.at - all[i - 1]!.at >= 1900, `runs ${i - 1} and ${i} only ${all[i]!.at - all[i - 1]!.at} ms apart:\n${logs}`);
  const ls = JSON.parse(await T(['--json', 'store', 'ls', 'sched'])) as { checkpoints: Array<{ id: string; schedule: string | null }> };
  assert.deepEqual(ls.checkpoints.map((c) => c.id), all.slice(-3).map((r) => r.id), 'exactly the three newest are kept');
  assert.match(await T(['store', 'verify']), /ok/);
  // the workload never stopped longer than a freeze (plus its own 50 ms sleep and sampling)
  const maxFrozen = Math.max(...all.map((r) => r.frozenMs));
  assert.ok(stallBeforeKill <= maxFrozen + 400, `the counter stalled ${stallBeforeKill} ms; the longest freeze was ${maxFrozen} ms`);
  // running, not frozen, still counting; no staging left behind by the killed daemon
  const ps = JSON.parse(await T(['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((p) => p.name === 'sched')?.state, 'running');
  const c = Number(readFileSync(countFile, 'utf8'));
  await eventually(async () => Number(readFileSync(countFile, 'utf8')) > c + 5, 10000);
  const staging = '/dev/shm/tsmigrate';
  const mine = existsSync(staging) ? readdirSync(staging).filter((n) => n.startsWith('sched-')) : [];
  assert.deepEqual(mine, []);

  // never beside another operation on the container: while something holds its lock, the daemon waits and retries
  const lock = await acquireLock(createRuntime({ root }).store.lockDir('sched'), 'container sched');
  const before = runs().length;
  d = daemon();
  try {
    await eventually(async () => /schedule sched: busy, trying again shortly/.test(logs), 60000, 100);
    assert.equal(runs().length, before, 'no checkpoint while the container was busy');
  } finally {
    await lock.release();
  }
  await eventually(async () => runs().length > before, 60000, 100);
  d.kill('SIGTERM');
  assert.equal(await exited(d), 0, logs);
});
