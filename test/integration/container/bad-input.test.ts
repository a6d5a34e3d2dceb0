import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CLI, cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { hostVeths, leftovers } from '../../helpers/leftovers.js';

const root = tempRoot();
const badProfile = path.join(root, 'bad-seccomp.json');
const oddProfile = path.join(root, 'odd-seccomp.json');
writeFileSync(badProfile, '{"defaultAction": ');
writeFileSync(oddProfile, JSON.stringify({ defaultAction: 'SCMP_ACT_MAYBE', syscalls: [] }));
before(async () => {
  await importBusybox(root);
  await cliOk(root, ['run', '-d', 'taken', '--image', 'busybox', '--', 'sleep', '1000']);
});
after(async () => {
  await cli(root, ['rm', '-f', 'taken']);
  rmSync(root, { recursive: true, force: true });
});

const cases: Array<{ what: string; name: string; args: string[]; env?: NodeJS.ProcessEnv; uid?: number; want: RegExp; code: number }> = [
  { what: 'invalid name', name: 'Bad_Name', args: ['--image', 'busybox'], want: /invalid container name "Bad_Name"/, code: 2 },
  { what: 'name too long', name: 'a'.repeat(64), args: ['--image', 'busybox'], want: /invalid container name/, code: 2 },
  { what: 'name in use', name: 'taken', args: ['--image', 'busybox'], want: /already exists.*rm -f taken/, code: 1 },
  { what: 'unknown image', name: 'c1', args: ['--image', 'nope'], want: /unknown image "nope".*image import/, code: 1 },
  { what: 'bad size', name: 'c2', args: ['--image', 'busybox', '--memory', '12zz'], want: /memory|size/i, code: 2 },
  { what: 'bad cpu list', name: 'c3', args: ['--image', 'busybox', '--cpuset-cpus', '0-99'], want: /cpu/i, code: 2 },
  { what: 'bad cpus', name: 'c4', args: ['--image', 'busybox', '--cpus', 'lots'], want: /cpus/i, code: 2 },
  { what: 'bad --net', name: 'c5', args: ['--image', 'busybox', '--net', 'host'], want: /--net/, code: 2 },
  { what: '--ip outside the subnet', name: 'c6', args: ['--image', 'busybox', '--net', 'bridge', '--ip', '192.0.2.7'], want: /192\.0\.2\.7.*omit --ip/, code: 2 },
  { what: 'a missing command', name: 'c7', args: ['--image', 'busybox', '--', 'no-such-binary'], want: /no-such-binary/, code: 1 },
  { what: 'a missing workdir', name: 'c8', args: ['--image', 'busybox', '--workdir', '/nope', '--', 'true'], want: /nope/, code: 1 },
  { what: 'no cgroups under the cgroup root', name: 'c9', args: ['--image', 'busybox'], env: { TSMIGRATE_CGROUP_ROOT: mkdtempSync(path.join(tmpdir(), 'nocg-')) }, want: /cgroup/, code: 1 },
  { what: 'an unknown capability', name: 'c11', args: ['--image', 'busybox', '--cap-add', 'SYS_WIZARD'], want: /--cap-add: unknown capability "SYS_WIZARD".*NET_ADMIN/, code: 2 },
  { what: 'a seccomp profile that does not parse', name: 'c12', args: ['--image', 'busybox', '--security-opt', `seccomp=${badProfile}`], want: /seccomp profile .* is not valid JSON/, code: 2 },
  { what: 'a seccomp profile with an unknown action', name: 'c13', args: ['--image', 'busybox', '--security-opt', `seccomp=${oddProfile}`], want: /seccomp profile defaultAction: "SCMP_ACT_MAYBE"/, code: 2 },
  { what: '--device on a path that is not a device', name: 'c14', args: ['--image', 'busybox', '--device', '/etc/passwd:/dev/pw'], want: /--device \/etc\/passwd is not a device node/, code: 2 },
  { what: '--device on a missing path', name: 'c15', args: ['--image', 'busybox', '--device', '/dev/nope0'], want: /--device \/dev\/nope0: ENOENT/, code: 2 },
  { what: 'an unknown --security-opt', name: 'c16', args: ['--image', 'busybox', '--security-opt', 'apparmor=unconfined'], want: /--security-opt "apparmor=unconfined" is not understood/, code: 2 },
  { what: '--privileged with --cap-drop', name: 'c17', args: ['--image', 'busybox', '--privileged', '--cap-drop', 'KILL'], want: /--privileged cannot be combined/, code: 2 },
  { what: 'an unknown --userns mode', name: 'c18', args: ['--image', 'busybox', '--userns', 'keep-id'], want: /invalid --userns "keep-id".*--userns auto/, code: 2 },
  { what: '--log-max-size 0', name: 'c21', args: ['--image', 'busybox', '--log-max-size', '0'], want: /invalid --log-max-size "0"; give a size of at least 4k/, code: 2 },
  { what: '--log-max-size abc', name: 'c22', args: ['--image', 'busybox', '--log-max-size', 'abc'], want: /invalid --log-max-size "abc"/, code: 2 },
  { what: 'a negative --log-max-size', name: 'c23', args: ['--image', 'busybox', '--log-max-size', '-5'], want: /invalid --log-max-size "-5"/, code: 2 },
  { what: 'a bad --log-opt', name: 'c24', args: ['--image', 'busybox', '--log-opt', 'max-file=0'], want: /invalid --log-opt max-file "0"/, code: 2 },
  { what: 'not root', name: 'c10', args: ['--image', 'busybox'], uid: 65534, want: /needs root.*sudo/, code: 4 },
];

for (const c of cases) {
  test(`run refuses ${c.what} with one clear line and leaves nothing`, async () => {
    const vethsBefore = hostVeths();
    const args = ['run', '-d', c.name, ...c.args];
    if (!args.includes('--')) args.push('--', 'sleep', '100');
    const r = await cli(root, args, { ...(c.env ? { env: c.env } : {}), ...(c.uid !== undefined ? { uid: c.uid } : {}) });
    assert.equal(r.code, c.code, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, /^tsmigrate: error: /);
    assert.match(lines[0]!, c.want);
    if (c.name !== 'taken') assert.deepEqual(leftovers(root, c.name), []);
    assert.deepEqual(hostVeths(), vethsBefore, 'no veth left');
    assert.deepEqual(readdirSync(path.join(root, 'locks')).filter((l) => l !== 'images'), [], 'no lock left');
  });
}

test('run --userns auto where user namespaces are disabled: one clear line, nothing created', () => {
  // user.max_user_namespaces is per user namespace: 0 in a namespace of our own is a host with them disabled
  // (this VM will not let even root lower the host's own value)
  const script = [
    "const fs = require('node:fs'); const { spawnSync } = require('node:child_process');",
    "fs.writeFileSync('/proc/sys/user/max_user_namespaces', '0');",
    'const r = spawnSync(process.execPath, process.argv.slice(1), { stdio: "inherit" });',
    'process.exit(r.status ?? 1);',
  ].join('\n');
  const r = spawnSync('unshare', ['--user', '--map-root-user', '--', process.execPath, '-e', script, CLI, '--root', root, 'run', '-d', 'c19', '--userns', 'auto', '--image', 'busybox', '--', 'sleep', '100'], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr.trim(), /^tsmigrate: error: --userns auto: user namespaces are disabled on this host.*max_user_namespaces/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.deepEqual(leftovers(root, 'c19'), []);
  assert.deepEqual(readdirSync(root).filter((d) => d === 'userns'), [], 'no range leased');
});

test('the container that was in the way is untouched', async () => {
  const ps = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.deepEqual(ps.map((p) => [p.name, p.state]), [['taken', 'running']]);
});

test('image import refuses a missing source, a bad name and a duplicate', async () => {
  const missing = await cli(root, ['image', 'import', 'x', '/nonexistent/rootfs']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /nonexistent/);
  const bad = await cli(root, ['image', 'import', 'X!', '/tmp']);
  assert.match(bad.stderr, /invalid image name/);
  const dup = await cli(root, ['image', 'import', 'busybox', '/tmp']);
  assert.match(dup.stderr, /already|exists/);
  const inUse = await cli(root, ['image', 'rm', 'busybox']);
  assert.notEqual(inUse.code, 0);
  assert.match(inUse.stderr, /used by.*taken/);
  const f = path.join(tmpdir(), 'not-a-tar.tar');
  writeFileSync(f, 'hello, not a tar');
  const notTar = await cli(root, ['image', 'import', 'nt', f]);
  assert.notEqual(notTar.code, 0);
  assert.equal(notTar.stderr.trim().split('\n').length, 1);
  assert.deepEqual(readdirSync(path.join(root, 'images')).filter((n) => n.startsWith('.')), [], 'no temp dirs left');
});

test('CLI usage errors are one line too', async () => {
  const r = await cli(root, ['run']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^tsmigrate: error: .*see tsmigrate --help\n$/);
  const v = await cliOk(root, ['--version']);
  assert.match(v, /^\d+\.\d+\.\d+\n$/);
  const h = await cliOk(root, ['--help']);
  for (const c of ['run', 'ps', 'inspect', 'exec', 'stop', 'rm', 'freeze', 'thaw', 'logs', 'image', 'doctor']) assert.match(h, new RegExp(`\\n  ${c}\\b`));
});
