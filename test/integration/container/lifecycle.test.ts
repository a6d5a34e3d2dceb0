import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';

const root = tempRoot();
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo tick $i; sleep 0.1; done'];

before(async () => {
  await importBusybox(root);
});
after(async () => {
  for (const n of ['life', 'fz', 'ex', 'fg']) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

async function count(name: string): Promise<number> {
  const out = await cliOk(root, ['exec', name, '--', 'cat', '/tmp/count']);
  return Number(out.trim());
}

test('run -d, ps, inspect, exec, logs, stop, rm: nothing left behind', async () => {
  await cliOk(root, ['run', '-d', 'life', '--image', 'busybox', '--hostname', 'lifebox', '--memory', '64m', '--pids-limit', '64', '--cpus', '0.5', '--', ...counter]);
  const ps = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string; pid: number; memoryBytes: number }>;
  const row = ps.find((r) => r.name === 'life');
  assert.equal(row?.state, 'running');
  assert.ok(row.pid > 1);
  assert.ok(row.memoryBytes > 0, 'memory use is reported');

  // namespaces: own hostname, own PID namespace (init is pid 1), only loopback
  assert.equal((await cliOk(root, ['exec', 'life', '--', 'hostname'])).trim(), 'lifebox');
  const ps1 = await cliOk(root, ['exec', 'life', '--', 'cat', '/proc/1/cmdline']);
  assert.match(ps1, /^sh/);
  const links = await cliOk(root, ['exec', 'life', '--', 'ip', '-o', 'link']);
  assert.deepEqual(links.trim().split('\n').map((l) => l.split(':')[1]?.trim()), ['lo']);
  // /sys is read-only, /dev is minimal
  const w = await cli(root, ['exec', 'life', '--', 'sh', '-c', 'echo x > /sys/kernel/x']);
  assert.notEqual(w.code, 0);
  const dev = (await cliOk(root, ['exec', 'life', '--', 'ls', '/dev'])).split(/\s+/).filter(Boolean).sort();
  for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm']) assert.ok(dev.includes(d), `/dev/${d}`);

  const info = JSON.parse(await cliOk(root, ['inspect', 'life'])) as {
    cgroup: { limits: { memoryBytes: number; pidsLimit: number; cpus: number }; paths: Record<string, string> };
    pids: number[];
    mounts: Array<{ target: string; fstype: string }>;
  };
  assert.equal(info.cgroup.limits.memoryBytes, 64 << 20);
  assert.equal(info.cgroup.limits.pidsLimit, 64);
  assert.equal(info.cgroup.limits.cpus, 0.5);
  assert.ok(info.pids.length >= 1);
  assert.equal(info.mounts.find((m) => m.target === '/')?.fstype, 'overlay');

  // the exec'd process lands in the container's cgroup, the root of the container's cgroup namespace
  // (a process outside that root would see a path such as /../life)
  const cg = await cliOk(root, ['exec', 'life', '--', 'cat', '/proc/self/cgroup']);
  const lines = cg.trim().split('\n');
  assert.ok(lines.length > 0 && lines.every((l) => l.endsWith(':/')), cg);

  // the upper layer is the container's CoW layer
  await eventually(async () => Number(readFileSync(path.join(root, 'containers/life/rootfs/upper/tmp/count'), 'utf8')) > 2);
  const logs = await cliOk(root, ['logs', 'life']);
  assert.match(logs, /tick 1\n/);

  await cliOk(root, ['stop', '-t', '1', 'life']);
  const after = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(after.find((r) => r.name === 'life')?.state, 'exited');
  await cliOk(root, ['rm', 'life']);
  assert.deepEqual(leftovers(root, 'life'), []);
});

test('freeze stops the counter, thaw resumes it', async () => {
  await cliOk(root, ['run', '-d', 'fz', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count('fz')) > 2);
  await cliOk(root, ['freeze', 'fz']);
  const upper = path.join(root, 'containers/fz/rootfs/upper/tmp/count');
  const a = Number(readFileSync(upper, 'utf8'));
  await sleep(600);
  const b = Number(readFileSync(upper, 'utf8'));
  assert.equal(b, a, 'a frozen counter does not move');
  const ps = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((r) => r.name === 'fz')?.state, 'frozen');
  const ex = await cli(root, ['exec', 'fz', '--', 'true']);
  assert.notEqual(ex.code, 0);
  assert.match(ex.stderr, /frozen.*thaw/);
  await cliOk(root, ['thaw', 'fz']);
  await eventually(async () => (await count('fz')) > b + 2);
  const r = await cli(root, ['rm', 'fz']);
  assert.notEqual(r.code, 0, 'rm refuses a running container without -f');
  assert.match(r.stderr, /rm -f/);
  await cliOk(root, ['rm', '-f', 'fz']);
  assert.deepEqual(leftovers(root, 'fz'), []);
});

test('the supervisor keeps logs and the exit code after the CLI is gone', async () => {
  await cliOk(root, ['run', '-d', 'ex', '--image', 'busybox', '--', 'sh', '-c', 'echo out; echo err >&2; sleep 0.5; exit 3']);
  const ps = await eventually(async () => {
    const rows = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string; exitCode: number }>;
    const r = rows.find((x) => x.name === 'ex');
    return r?.state === 'exited' ? r : undefined;
  });
  assert.equal(ps.exitCode, 3);
  const logs = await cliOk(root, ['logs', 'ex']);
  assert.match(logs, /out\n/);
  assert.match(logs, /err\n/);
  await cliOk(root, ['rm', 'ex']);
  assert.deepEqual(leftovers(root, 'ex'), []);
});

test('run in the foreground streams output and returns the exit code', async () => {
  const r = await cli(root, ['run', 'fg', '--image', 'busybox', '--', 'sh', '-c', 'echo hello from fg; exit 7']);
  assert.equal(r.code, 7);
  assert.match(r.stdout, /hello from fg/);
  await cliOk(root, ['rm', 'fg']);
});
