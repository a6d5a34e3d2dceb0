import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { hostVeths, leftovers } from '../../helpers/leftovers.js';

const root = tempRoot();
const env = { TSMIGRATE_BRIDGE: 'tsmt2', TSMIGRATE_SUBNET: '10.216.0.0/24', TSMIGRATE_IPAM_DIR: `${root}/ipam` };
// The count is renamed into place, so a checkpoint taken mid-write still holds a whole number.
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo tick $i; sleep 0.1; done'];
const T = (args: string[]) => cliOk(root, args, { env, timeoutMs: 120000 });

before(async () => importBusybox(root));
after(async () => {
  for (const n of ['bb', 'bb2', 'cyc', 'tr', 'fl', 'net1', 'net1-clone']) await cli(root, ['rm', '-f', n], { env });
  try {
    execFileSync('ip', ['link', 'del', 'tsmt2']);
  } catch {
    /* gone */
  }
  rmSync(root, { recursive: true, force: true });
});

const upperCount = (name: string) => Number(readFileSync(path.join(root, 'containers', name, 'rootfs/upper/tmp/count'), 'utf8'));
async function count(name: string): Promise<number> {
  return Number((await T(['exec', name, '--', 'cat', '/tmp/count'])).trim());
}
async function ckpt(name: string, extra: string[] = []): Promise<{ id: string; timings: { frozenMs: number } }> {
  return JSON.parse(await T(['--json', 'checkpoint', name, ...extra])) as { id: string; timings: { frozenMs: number } };
}

test('checkpoint --leave-running: the counter goes on; the store holds a verified, root-only checkpoint', async () => {
  await T(['run', '-d', 'bb', '--image', 'busybox', '--memory', '64m', '--pids-limit', '50', '--', ...counter]);
  await eventually(async () => (await count('bb')) >= 5);
  const m = await ckpt('bb', ['--tag', 'first']);
  assert.ok(m.timings.frozenMs > 0);
  const before = await count('bb');
  await eventually(async () => (await count('bb')) > before + 3);
  const list = JSON.parse(await T(['--json', 'checkpoints', 'bb'])) as Array<{ id: string; tag: string; size: number }>;
  assert.deepEqual(list.map((c) => [c.id, c.tag]), [[m.id, 'first']]);
  assert.ok(list[0]!.size > 0);
  assert.match(await T(['checkpoint', 'verify', m.id]), /ok/);
  const dir = path.join(root, 'checkpoints', m.id);
  for (const f of readdirSync(dir)) assert.equal(statSync(path.join(dir, f)).mode & 0o077, 0, `${f} is root-only`);
  assert.equal(statSync(dir).mode & 0o077, 0);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { container: { limits: { memoryBytes: number; pidsLimit: number } }; criu: { version: string } };
  assert.equal(manifest.container.limits.memoryBytes, 64 << 20);
  assert.equal(manifest.container.limits.pidsLimit, 50);
  assert.match(manifest.criu.version, /^4\./);

  // restore refuses while the container runs: never two copies
  const two = await cli(root, ['restore', m.id], { env });
  assert.notEqual(two.code, 0);
  assert.match(two.stderr, /second copy/);

  // the checkpoint-time state comes back: the upper layer, and the counter from its memory
  await T(['exec', 'bb', '--', 'sh', '-c', 'echo after > /tmp/marker']);
  await T(['rm', '-f', 'bb']);
  await T(['restore', m.id]);
  const c0 = upperCount('bb');
  assert.ok(c0 < before + 10, `restored counter ${c0} starts near the checkpoint (${before}), not from the later value`);
  await eventually(async () => (await count('bb')) > c0 + 3);
  assert.equal(existsSync(path.join(root, 'containers/bb/rootfs/upper/tmp/marker')), false, 'files written after the checkpoint are gone');
  const info = JSON.parse(await T(['inspect', 'bb'])) as { status: string; cgroup: { limits: { memoryBytes: number; pidsLimit: number } } };
  assert.equal(info.status, 'running');
  assert.deepEqual([info.cgroup.limits.memoryBytes, info.cgroup.limits.pidsLimit], [64 << 20, 50], 'limits recreated');
  assert.match(await T(['logs', 'bb']), new RegExp(`tick ${c0 + 2}\\n`), 'the log continues through the new supervisor');
  assert.equal((await T(['exec', 'bb', '--', 'hostname'])).trim(), 'bb');
});

test('a file changed after the checkpoint shows its checkpoint-time content after restore', async () => {
  await T(['run', '-d', 'fl', '--image', 'busybox', '--', 'sh', '-c', 'echo v1 > /etc/state.txt; exec 3</etc/state.txt; sleep 1000']);
  await eventually(async () => (await T(['exec', 'fl', '--', 'cat', '/etc/state.txt'])).trim() === 'v1');
  const m = await ckpt('fl');
  await T(['exec', 'fl', '--', 'sh', '-c', 'echo version-two-longer > /etc/state.txt; rm /bin/vi']);
  await T(['rm', '-f', 'fl']);
  await T(['restore', m.id]);
  assert.equal((await T(['exec', 'fl', '--', 'cat', '/etc/state.txt'])).trim(), 'v1');
  assert.equal((await cli(root, ['exec', 'fl', '--', 'test', '-e', '/bin/vi'], { env })).code, 0, 'a file deleted after the checkpoint is back');
});

test('three checkpoint and restore cycles in a row (--stop)', async () => {
  await T(['run', '-d', 'cyc', '--image', 'busybox', '--', ...counter]);
  let last = 0;
  for (let i = 0; i < 3; i++) {
    await eventually(async () => (await count('cyc')) > last + 3);
    const m = await ckpt('cyc', ['--stop']);
    const ps = JSON.parse(await T(['--json', 'ps'])) as Array<{ name: string; state: string }>;
    assert.equal(ps.find((r) => r.name === 'cyc')?.state, 'exited', '--stop leaves it stopped');
    const at = upperCount('cyc');
    await T(['restore', m.id]);
    await eventually(async () => (await count('cyc')) > at + 2);
    assert.ok(at >= last, 'monotonic across cycles');
    last = at;
  }
  assert.equal((JSON.parse(await T(['--json', 'checkpoints', 'cyc'])) as unknown[]).length, 3);
});

test('a clone restored under a new name runs beside the original, with its own IP', async () => {
  await T(['run', '-d', 'net1', '--image', 'busybox', '--net', 'bridge', '--', ...counter]);
  await eventually(async () => (await count('net1')) > 3);
  const m = await ckpt('net1');
  await T(['restore', m.id, '--name', 'net1-clone']);
  const ps = JSON.parse(await T(['--json', 'ps'])) as Array<{ name: string; state: string; ip: string }>;
  const a = ps.find((r) => r.name === 'net1');
  const b = ps.find((r) => r.name === 'net1-clone');
  assert.equal(a?.state, 'running');
  assert.equal(b?.state, 'running');
  assert.notEqual(a?.ip, b?.ip);
  const inside = await T(['exec', 'net1-clone', '--', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
  assert.match(inside, new RegExp(`${b!.ip!.replace(/\./g, '\\.')}/`), 'the clone carries its new address');
  await eventually(async () => (await count('net1-clone')) > 5);
  const c1 = await count('net1');
  await sleep(300);
  assert.ok((await count('net1')) > c1, 'the original keeps running');
  await T(['rm', '-f', 'net1-clone']);
  assert.deepEqual(leftovers(root, 'net1-clone'), []);
});

test('a dump CRIU refuses (a traced process) leaves the container running and thawed, and records nothing', async () => {
  await T(['run', '-d', 'tr', '--image', 'busybox', '--', ...counter]);
  const pid = Number(readFileSync(path.join(root, 'containers/tr/init.pid'), 'utf8'));
  const strace = spawn('strace', ['-p', String(pid), '-o', '/dev/null'], { stdio: 'ignore' });
  try {
    await sleep(500);
    const r = await cli(root, ['checkpoint', 'tr'], { env });
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /trac|ptrace|seize/i);
    // the log is kept where the message says (the staging it was written to is gone), and the message quotes it
    const kept = /\(CRIU log: (\S+)\)/.exec(r.stderr)?.[1];
    assert.ok(kept?.startsWith(path.join(root, 'logs/criu/dump-tr-')), r.stderr);
    const quoted = /CRIU logged: "(?:Error|Warn) \(([^)]*)\): ([^"]*)"/.exec(r.stderr);
    assert.ok(quoted, `a CRIU line is quoted: ${r.stderr}`);
    assert.ok(readFileSync(kept!, 'utf8').includes(`(${quoted[1]}): ${quoted[2]!.replace(/\.\.\.$/, '')}`), `${kept} holds the quoted line`);
  } finally {
    strace.kill('SIGINT');
  }
  const info = JSON.parse(await T(['inspect', 'tr'])) as { status: string; cgroup: { freezer: string } };
  assert.equal(info.status, 'running');
  assert.equal(info.cgroup.freezer, 'thawed');
  const c = await count('tr');
  await eventually(async () => (await count('tr')) > c + 2);
  assert.deepEqual(JSON.parse(await T(['--json', 'checkpoints', 'tr'])), []);
  assert.deepEqual(readdirSync(path.join(root, 'checkpoints')).filter((f) => f.startsWith('.')), [], 'no temp dirs');
});

test('a corrupted checkpoint is refused and nothing changes; a failed restore leaves nothing', async () => {
  await T(['run', '-d', 'bb2', '--image', 'busybox', '--net', 'bridge', '--', ...counter]);
  const m = await ckpt('bb2', ['--stop']);
  const blob = path.join(root, 'checkpoints', m.id, 'upper.tar.zst');
  const orig = readFileSync(blob);
  const bad = Buffer.from(orig);
  bad[bad.length >> 1] = (bad[bad.length >> 1] ?? 0) ^ 0xff;
  const { writeFileSync } = await import('node:fs');
  writeFileSync(blob, bad);
  const r = await cli(root, ['restore', m.id], { env });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /corrupted: upper\.tar\.zst has sha256/);
  const v = await cli(root, ['checkpoint', 'verify', m.id], { env });
  assert.notEqual(v.code, 0);
  const ps = JSON.parse(await T(['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((x) => x.name === 'bb2')?.state, 'exited', 'the stopped container is untouched');
  writeFileSync(blob, orig);
  // now make the restore fail late: its IP is taken by another container
  const ip = JSON.parse(readFileSync(path.join(root, 'checkpoints', m.id, 'manifest.json'), 'utf8')).network.ip as string;
  await T(['rm', 'bb2']);
  await T(['run', '-d', 'cyc2', '--image', 'busybox', '--net', 'bridge', '--ip', ip, '--', 'sleep', '100']).catch(() => undefined);
  const veths = hostVeths();
  const r2 = await cli(root, ['restore', m.id], { env });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr, new RegExp(ip.replace(/\./g, '\\.')));
  assert.deepEqual(leftovers(root, 'bb2'), []);
  assert.deepEqual(hostVeths(), veths);
  await T(['rm', '-f', 'cyc2']);
  await T(['restore', m.id]);
  assert.equal((JSON.parse(await T(['--json', 'ps'])) as Array<{ name: string; state: string }>).find((x) => x.name === 'bb2')?.state, 'running');
  await T(['rm', '-f', 'bb2']);
});
