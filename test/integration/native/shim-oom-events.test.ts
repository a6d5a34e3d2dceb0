/**
 * The supervisor's OOM watch on a cgroup v2 memory.events file (inotify). This
 * machine's cgroup2 hierarchy has no memory controller, so the real tsm-shim
 * runs a real busybox container here with --oom-file pointing at a file laid
 * out as the kernel's, which the test changes as the kernel would. The v1 path
 * (an eventfd on memory.oom_control) is tested with real OOM kills in
 * test/integration/container/logs-oom.test.ts.
 */
import { resolveTools } from '../../../src/runtime/tools.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mountRootfs, rootfsLayout, unmountRootfs } from '../../../src/rootfs/overlay.js';
import { startShim } from '../../../src/shim/spawn.js';
import { supervisorArgs } from '../../../src/shim/supervisor-args.js';
import { eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { busyboxRootfs } from '../../helpers/images.js';

const events = (kills: number) => `low 0\nhigh 0\nmax ${kills * 7}\noom ${kills}\noom_kill ${kills}\noom_group_kill 0\n`;

/** A busybox `sleep 60` under the real supervisor, watching `file`, in a scratch state dir. */
async function withShim(kills: number, before: number, fn: (o: { dir: string; file: string; pid: number }) => Promise<void>): Promise<void> {
  const dir = tempRoot('tsm-shim-oom-');
  const layout = rootfsLayout(dir, busyboxRootfs());
  const file = path.join(dir, 'cgroup', 'memory.events');
  mkdirSync(path.dirname(file));
  writeFileSync(file, events(kills));
  await mountRootfs(layout, resolveTools(process.env).shim);
  let pid = 0;
  try {
    const args = supervisorArgs({ log: { maxBytes: 4096, maxFiles: 2 }, oomFile: file, oomKillsBefore: before });
    const shim = await startShim(resolveTools(process.env).shim, 'run', ['--rootfs', layout.merged, '--hostname', 't', '--cwd', '/', ...args, '--', 'sleep', '60'], dir);
    pid = shim.initPid;
    await shim.go();
    await fn({ dir, file, pid });
  } finally {
    try {
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await eventually(async () => existsSync(path.join(dir, 'exit.json')), 5000).catch(() => undefined);
    await unmountRootfs(layout).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

const readJson = <T>(file: string) => eventually(async () => JSON.parse(readFileSync(file, 'utf8')) as T, 5000);

test('v2: the supervisor sees memory.events count an OOM kill, records it with the kills from before, and marks the exit', () =>
  // a cgroup that had counted 4 before this container: not its kills
  withShim(4, 2, async ({ dir, file, pid }) => {
    await sleep(300);
    assert.equal(existsSync(path.join(dir, 'oom.json')), false, 'no kill yet, no record');
    const t0 = Date.now();
    writeFileSync(file, events(5));
    const rec = await readJson<{ oomKills: number; lastOomKillAt: string }>(path.join(dir, 'oom.json'));
    assert.equal(rec.oomKills, 3, 'two from before and one here');
    const at = Date.parse(rec.lastOomKillAt);
    assert.ok(at >= t0 - 1000 && at <= Date.now() + 1000, `seen when it happened (${rec.lastOomKillAt})`);
    assert.equal(readFileSync(path.join(dir, 'shim.log'), 'utf8'), '', 'woken by inotify: no fallback to polling');
    // the init killed within a second of an OOM kill: the exit is marked as one
    process.kill(pid, 'SIGKILL');
    const exit = await readJson<{ signal: string; oomKilled: boolean }>(path.join(dir, 'exit.json'));
    assert.deepEqual([exit.signal, exit.oomKilled], ['SIGKILL', true]);
  }));

test('a stop long after an OOM kill is not one: the exit is not marked', () =>
  withShim(0, 0, async ({ dir, file, pid }) => {
    writeFileSync(file, events(1));
    await readJson(path.join(dir, 'oom.json'));
    await sleep(1500);
    process.kill(pid, 'SIGKILL');
    const exit = await readJson<{ signal: string; oomKilled: boolean }>(path.join(dir, 'exit.json'));
    assert.deepEqual([exit.signal, exit.oomKilled], ['SIGKILL', false]);
  }));
