/**
 * Bounded container logs and OOM reporting against real containers: the
 * supervisor's rotation, `logs` (and -f) across rotated files, the kernel's
 * OOM killer in a real memory cgroup, and both kept by a restore in place.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { CLI, cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';

const root = tempRoot();
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 120000 });
const names = ['burst', 'follow', 'hog', 'child', 'calm', 'ckpt'];
/** grows a shell variable by 1 MiB a step, up to 100 MiB: past any limit these tests set */
const HOG = 'x=$(head -c 1048576 /dev/zero | tr "\\0" a); s=""; i=0; while [ $i -lt 100 ]; do s="$s$x"; i=$((i+1)); done; echo survived';

before(async () => importBusybox(root));
after(async () => {
  for (const n of names) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

const dir = (name: string) => path.join(root, 'containers', name);
const logFiles = (name: string) => readdirSync(dir(name)).filter((f) => /^container\.log(\.\d+)?$/.test(f)).sort();
const numbers = (text: string, word: string) => [...text.matchAll(new RegExp(`^${word} (\\d+)`, 'gm'))].map((m) => Number(m[1]));
/** true when ns are consecutive integers */
const consecutive = (ns: number[]) => ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);

interface Row { name: string; state: string; exitCode: number | null; oomKills: number; lastOomKillAt: string | null; oomKilled: boolean }
const row = async (name: string) => (JSON.parse(await T(['--json', 'ps'])) as Row[]).find((r) => r.name === name);

test('a container printing more than the limit keeps its log files under the bound; logs shows the newest lines in order', async () => {
  await T(['run', '-d', 'burst', '--image', 'busybox', '--log-max-size', '8k', '--log-max-files', '3', '--', 'sh', '-c',
    'i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo "line $i"; done; echo done; sleep 1000']);
  const out = await eventually(async () => {
    const o = await T(['logs', 'burst']);
    return o.endsWith('done\n') ? o : undefined;
  }, 20000);
  assert.deepEqual(logFiles('burst'), ['container.log', 'container.log.1', 'container.log.2']);
  for (const f of logFiles('burst')) assert.ok(statSync(path.join(dir('burst'), f)).size <= 8192, `${f} is at most 8 KiB`);
  const ns = numbers(out, 'line');
  assert.equal(ns.at(-1), 5000, 'the newest line is there');
  assert.ok(ns[0]! > 1, 'the oldest lines were rotated out');
  assert.ok(consecutive(ns), 'oldest first, none missing in between');
  assert.ok(out.length <= 3 * 8192 && out.length > 2 * 8192, `${out.length} bytes kept of ${3 * 8192}`);
  assert.match(out, /^line \d+\n/, 'files end at a line end: the oldest starts with a whole line');
  const config = JSON.parse(readFileSync(path.join(dir('burst'), 'config.json'), 'utf8')) as { log: unknown };
  assert.deepEqual(config.log, { maxBytes: 8192, maxFiles: 3 });
  const info = JSON.parse(await T(['inspect', 'burst'])) as { config: { log: unknown } };
  assert.deepEqual(info.config.log, { maxBytes: 8192, maxFiles: 3 });
  await T(['rm', '-f', 'burst']);
});

test('logs -f keeps following across rotations: every line, in order', async () => {
  // ~36 KB in bursts over 2-3 s, once logs -f is reading: the 4 KiB log rotates about nine times under it
  await T(['run', '-d', 'follow', '--image', 'busybox', '--log-opt', 'max-size=4k', '--log-opt', 'max-file=2', '--', 'sh', '-c',
    'echo ready; while [ ! -e /tmp/go ]; do sleep 0.05; done; i=0; while [ $i -lt 4000 ]; do i=$((i+1)); echo "line $i"; [ $((i % 100)) = 0 ] && sleep 0.05; done']);
  const child = spawn(process.execPath, [CLI, '--root', root, 'logs', '-f', 'follow'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  await eventually(async () => out.startsWith('ready\n'), 20000);
  await T(['exec', 'follow', '--', 'touch', '/tmp/go']);
  assert.equal(await exited, 0, 'logs -f ends when the container does');
  const ns = numbers(out, 'line');
  assert.equal(ns.length, 4000, 'no line lost or repeated');
  assert.ok(consecutive(ns) && ns[0] === 1);
  const kept = await T(['logs', 'follow']);
  assert.ok(kept.length <= 2 * 4096, 'while only the bound is kept on disk');
  await T(['rm', '-f', 'follow']);
});

test('the kernel OOM-kills the init at --memory: ps and inspect say so, and when', async () => {
  const t0 = Date.now();
  await T(['run', '-d', 'hog', '--image', 'busybox', '--memory', '32m', '--', 'sh', '-c', HOG]);
  const r = await eventually(async () => {
    const x = await row('hog');
    return x?.state === 'exited' ? x : undefined;
  }, 30000);
  assert.equal(r.exitCode, 137);
  assert.equal(r.oomKilled, true, 'ended by the OOM killer');
  assert.equal(r.oomKills, 1);
  const at = Date.parse(r.lastOomKillAt ?? '');
  assert.ok(at >= t0 - 1000 && at <= Date.now(), `lastOomKillAt ${r.lastOomKillAt} is when it happened`);
  const info = JSON.parse(await T(['inspect', 'hog'])) as { exit: { oomKilled: boolean; signal: string }; oomKills: number; lastOomKillAt: string };
  assert.deepEqual([info.exit.oomKilled, info.exit.signal, info.oomKills, info.lastOomKillAt], [true, 'SIGKILL', 1, r.lastOomKillAt]);
  assert.match(await T(['ps']), /hog\s+exited\(137,oom\)\s+-\s+-\s+-\s+1, \d+s ago/);
  assert.doesNotMatch(await T(['logs', 'hog']), /survived/);
});

test('a child OOM-killed while the init goes on shows in ps and inspect; a calm container shows none', async () => {
  await T(['run', '-d', 'child', '--image', 'busybox', '--memory', '32m', '-e', `HOG=${HOG}`, '--', 'sh', '-c', 'sh -c "$HOG"; echo "child $?"; sleep 1000']);
  await T(['run', '-d', 'calm', '--image', 'busybox', '--memory', '32m', '--', 'sleep', '1000']);
  const r = await eventually(async () => {
    const x = await row('child');
    return x && x.oomKills > 0 ? x : undefined;
  }, 30000);
  assert.equal(r.state, 'running', 'the init survives');
  assert.equal(r.oomKills, 1);
  assert.ok(r.lastOomKillAt && Date.now() - Date.parse(r.lastOomKillAt) < 60000);
  assert.equal(r.oomKilled, false);
  assert.match(await T(['logs', 'child']), /child 137/);
  const info = JSON.parse(await T(['inspect', 'child'])) as { oomKills: number; lastOomKillAt: string; cgroup: { memoryEvents: { oomKills: number; limitHits: number; peakBytes: number } } };
  assert.equal(info.oomKills, 1);
  assert.equal(info.lastOomKillAt, r.lastOomKillAt);
  assert.equal(info.cgroup.memoryEvents.oomKills, 1, "the cgroup's own counter");
  assert.ok(info.cgroup.memoryEvents.limitHits > 0);
  assert.ok(info.cgroup.memoryEvents.peakBytes > 30 << 20);
  const calm = await row('calm');
  assert.deepEqual([calm?.state, calm?.oomKills, calm?.lastOomKillAt, calm?.oomKilled], ['running', 0, null, false]);
  assert.match(await T(['ps']), /calm\s+running\s+\d+\s+-\s+\S+\s+-\s/);
  await T(['rm', '-f', 'child', 'calm']);
});

test('checkpoint --stop and restore in place keep the log, its limit and the OOM record; rotation goes on', async () => {
  // ~1.1 KB/s: the 4 KiB log rotates every few seconds
  const pad = 'x'.repeat(100);
  await T(['run', '-d', 'ckpt', '--image', 'busybox', '--memory', '32m', '--log-max-size', '4k', '--log-max-files', '2', '-e', `HOG=${HOG}`, '--', 'sh', '-c',
    `sh -c "$HOG"; i=0; while true; do i=$((i+1)); echo "tick $i ${pad}"; sleep 0.1; done`]);
  const oom = await eventually(async () => {
    const x = await row('ckpt');
    return x && x.oomKills === 1 && logFiles('ckpt').length === 2 ? x : undefined;
  }, 30000);
  await T(['checkpoint', 'ckpt', '--stop']);
  const last = numbers(await T(['logs', 'ckpt']), 'tick').at(-1)!;
  const id = (JSON.parse(await T(['--json', 'checkpoints', 'ckpt'])) as Array<{ id: string }>)[0]!.id;
  await T(['restore', id]);
  const inode = statSync(path.join(dir('ckpt'), 'container.log')).ino;
  // the restored counter goes on in the same log, from where the checkpoint left it
  const ns = await eventually(async () => {
    const x = numbers(await T(['logs', 'ckpt']), 'tick');
    return x.at(-1)! > last + 2 ? x : undefined;
  }, 20000);
  assert.ok(ns.includes(last), `the lines from before the checkpoint are kept (tick ${last})`);
  assert.ok(consecutive(ns), 'and the restored ones follow them');
  const info = JSON.parse(await T(['inspect', 'ckpt'])) as { status: string; config: { log: unknown }; oomKills: number; lastOomKillAt: string };
  assert.equal(info.status, 'running');
  assert.deepEqual(info.config.log, { maxBytes: 4096, maxFiles: 2 });
  assert.deepEqual([info.oomKills, info.lastOomKillAt], [1, oom.lastOomKillAt], 'the OOM record outlives the cgroup it was counted in');
  // the new supervisor rotates under the same limit
  await eventually(async () => statSync(path.join(dir('ckpt'), 'container.log')).ino !== inode, 30000, 200);
  assert.deepEqual(logFiles('ckpt'), ['container.log', 'container.log.1']);
  for (const f of logFiles('ckpt')) assert.ok(statSync(path.join(dir('ckpt'), f)).size <= 4096, f);
  await T(['rm', '-f', 'ckpt']);
});
