import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { hostVeths, leftovers } from '../../helpers/leftovers.js';
import { assertLocalRoute } from '../../../src/network/guard.js';

const root = tempRoot();
// a test bridge and subnet of our own, so the tests never touch a real tsm0
const env = { TSMIGRATE_BRIDGE: 'tsmt1', TSMIGRATE_SUBNET: '10.214.0.0/24', TSMIGRATE_IPAM_DIR: `${root}/ipam` };
const names = ['oom', 'bomb', 'web', 'web2', 'isol'];

before(async () => {
  await importBusybox(root);
});
after(async () => {
  for (const n of names) await cli(root, ['rm', '-f', n], { env });
  await import('node:child_process').then(({ execFileSync }) => {
    try {
      execFileSync('ip', ['link', 'del', 'tsmt1']);
    } catch {
      /* already gone */
    }
  });
  rmSync(root, { recursive: true, force: true });
});

interface Row { name: string; state: string; exitCode: number | null; ip: string | null }
async function row(name: string): Promise<Row | undefined> {
  return (JSON.parse(await cliOk(root, ['--json', 'ps'], { env })) as Row[]).find((r) => r.name === name);
}

test('a memory hog is killed at its memory limit', async () => {
  // each step keeps 1 MiB more in a shell variable; 24 MiB is well past the 16 MiB limit
  await cliOk(root, ['run', '-d', 'oom', '--image', 'busybox', '--memory', '16m', '--', 'sh', '-c',
    'x=$(head -c 1048576 /dev/zero | tr "\\0" a); s=""; i=0; while [ $i -lt 64 ]; do s="$s$x"; i=$((i+1)); echo grew $i; done; echo survived'], { env });
  const r = await eventually(async () => {
    const x = await row('oom');
    return x?.state === 'exited' ? x : undefined;
  }, 30000);
  assert.equal(r.exitCode, 137, 'killed by SIGKILL (the OOM killer)');
  const logs = await cliOk(root, ['logs', 'oom'], { env });
  assert.doesNotMatch(logs, /survived/);
});

test('a fork bomb is stopped by the pids limit', async () => {
  await cliOk(root, ['run', '-d', 'bomb', '--image', 'busybox', '--pids-limit', '20', '--', 'sleep', '1000'], { env });
  // the bomb runs inside the container (exec joins its cgroups) and forks until the kernel says no
  const r = await cli(root, ['exec', 'bomb', '--', 'sh', '-c', 'while true; do sleep 30 >/dev/null 2>&1 & done'], { env, timeoutMs: 30000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /can't fork|Resource temporarily unavailable/);
  const info = JSON.parse(await cliOk(root, ['inspect', 'bomb'], { env })) as { status: string; pids: number[]; cgroup: { limits: { pidsLimit: number } } };
  assert.equal(info.cgroup.limits.pidsLimit, 20);
  assert.ok(info.pids.length <= 20 && info.pids.length >= 15, `the bomb filled the limit and no more: ${info.pids.length} tasks`);
  assert.equal(info.status, 'running', 'the container itself survives');
  await cliOk(root, ['rm', '-f', 'bomb'], { env });
});

test('--net bridge: a static IP on the bridge, reachable from the host; rm removes the veth', async () => {
  await cliOk(root, ['run', '-d', 'web', '--image', 'busybox', '--net', 'bridge', '--ip', '10.214.0.10', '--', 'sh', '-c',
    'while true; do echo "hello from $(hostname)" | nc -l -p 8080; done'], { env });
  await cliOk(root, ['run', '-d', 'web2', '--image', 'busybox', '--net', 'bridge', '--', 'sleep', '1000'], { env });
  assert.equal((await row('web'))?.ip, '10.214.0.10');
  const ip2 = (await row('web2'))?.ip;
  assert.equal(ip2, '10.214.0.2', 'the lowest free address');
  await assertLocalRoute('10.214.0.10', 'tsmt1');
  const got = await eventually(
    () =>
      new Promise<string | undefined>((resolve) => {
        const s = net.connect({ host: '10.214.0.10', port: 8080 });
        let d = '';
        s.on('data', (b) => (d += b.toString()));
        s.on('end', () => resolve(d || undefined));
        s.on('error', () => resolve(undefined));
        s.setTimeout(2000, () => s.destroy());
      }),
    10000,
    100,
  );
  assert.equal(got.trim(), 'hello from web');
  // container to container over the bridge, and the gateway (the host side) answers too
  const ping = await cliOk(root, ['exec', 'web2', '--', 'sh', '-c', 'nc 10.214.0.10 8080 </dev/null'], { env });
  assert.match(ping, /hello from web/);
  const routes = await cliOk(root, ['exec', 'web2', '--', 'ip', 'route'], { env });
  assert.match(routes, /default via 10\.214\.0\.1/);
  const veths = hostVeths();
  await cliOk(root, ['rm', '-f', 'web', 'web2'], { env });
  assert.equal(hostVeths().length, veths.length - 2, 'both host veths are gone');
  assert.deepEqual(leftovers(root, 'web'), []);
  // the address is free again
  await cliOk(root, ['run', '-d', 'isol', '--image', 'busybox', '--net', 'bridge', '--ip', '10.214.0.10', '--', 'sleep', '100'], { env });
  await cliOk(root, ['rm', '-f', 'isol'], { env });
});
