/**
 * Escapes tried from inside a container (test/fixtures/escape.py, run with
 * python3 in the Debian image): each must fail in a default container and work
 * with --privileged (so the attempts themselves are known to work), and must
 * still fail after a checkpoint/restore and after a move over real SSH.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { debianRootfs } from '../../helpers/images.js';
import { addRigPeer, Rig } from '../../helpers/rig.js';
import { DEFAULT_CAPABILITIES } from '../../../src/security/capabilities.js';

const A = tempRoot('tsm-sec-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
const ESCAPES = ['blockDevice', 'corePattern', 'sysRemountRw', 'cgroupEscape', 'kernelModule', 'kmsg', 'ptrace', 'regainCapability'];
const script = readFileSync(path.join(import.meta.dirname, '../../../../test/fixtures/escape.py'), 'utf8');
// the host's root disk: what a container would mount to read the host's files
const rootDev = statSync('/').dev;
const devMajor = String(Math.floor(rootDev / 256) & 0xfff);
const devMinor = String((rootDev & 0xff) | ((rootDev >> 12) & 0xfff00));

const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env: { SSH_AUTH_SOCK: '' }, timeoutMs: 180000 });

async function escapes(root: string, name: string): Promise<Record<string, boolean | string>> {
  const out = await cliOk(root, ['exec', name, '--', 'python3', '-c', script, devMajor, devMinor, String(process.pid)], { timeoutMs: 60000 });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, boolean | string>;
}

function assertConfined(r: Record<string, boolean | string>, when: string) {
  for (const e of ESCAPES) assert.equal(r[e], false, `${e} must fail ${when}: ${JSON.stringify(r)}`);
  assert.equal(r['hostPids'], false, `host pids visible ${when}`);
}

async function initSecurity(root: string, name: string) {
  const i = JSON.parse(await cliOk(root, ['inspect', name])) as { security: { init: { effective: string[]; bounding: string[]; inheritable: string[]; ambient: string[]; noNewPrivs: boolean; seccompMode: number } } };
  return i.security.init;
}

async function assertDefaultProfile(root: string, name: string, when: string) {
  const s = await initSecurity(root, name);
  assert.deepEqual([...s.effective].sort(), [...DEFAULT_CAPABILITIES].sort(), `effective capabilities ${when}`);
  assert.deepEqual([...s.bounding].sort(), [...DEFAULT_CAPABILITIES].sort(), `bounding set ${when}`);
  assert.deepEqual(s.inheritable, [], `inheritable ${when}`);
  assert.deepEqual(s.ambient, [], `ambient ${when}`);
  assert.equal(s.noNewPrivs, true, `no_new_privs ${when}`);
  assert.equal(s.seccompMode, 2, `seccomp filter ${when}`);
}

before(async () => {
  B = await addRigPeer(rig, 'tsm-peer-sec', '127.0.0.5', A, TA);
  await cliOk(A, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 300000 });
});

after(async () => {
  for (const n of ['conf', 'priv', 'dev']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll('tsm-peer-sec');
  rmSync(A, { recursive: true, force: true });
});

test('every escape fails in a default container and works with --privileged', async () => {
  await cliOk(A, ['run', '-d', 'conf', '--image', 'debian', '--', 'sleep', '100000']);
  await cliOk(A, ['run', '-d', 'priv', '--privileged', '--image', 'debian', '--', 'sleep', '100000']);
  assertConfined(await escapes(A, 'conf'), 'in a default container');
  await assertDefaultProfile(A, 'conf', 'after run');
  const p = await escapes(A, 'priv');
  for (const e of ESCAPES) assert.equal(p[e], true, `${e} must work with --privileged (else the attempt proves nothing): ${JSON.stringify(p)}`);
  await cliOk(A, ['rm', '-f', 'priv']);
});

test('the profile survives a checkpoint and restore', async () => {
  const id = (await cliOk(A, ['checkpoint', 'conf', '--stop'])).trim().split(/\s/)[0]!;
  await cliOk(A, ['restore', id], { timeoutMs: 120000 });
  await assertDefaultProfile(A, 'conf', 'after restore');
  assertConfined(await escapes(A, 'conf'), 'after a checkpoint and restore');
});

test('the profile survives a move to another host', async () => {
  await TA(['move', 'conf', 'tsm-peer-sec']);
  await assertDefaultProfile(B, 'conf', 'after a move');
  assertConfined(await escapes(B, 'conf'), 'after a move');
  const i = JSON.parse(await cliOk(B, ['inspect', 'conf'])) as { security: { devices: string[]; privileged: boolean }; cgroup: { paths: Record<string, string> } };
  assert.equal(i.security.privileged, false);
  // the kernel's own list on the peer (v1 devices cgroup here): the rules, not 'a *:* rwm'
  const list = readFileSync(path.join(i.cgroup.paths['devices']!, 'devices.list'), 'utf8').trim().split('\n');
  assert.ok(list.includes('c 1:3 rwm') && list.includes('c 136:* rwm') && !list.some((d) => d.startsWith('a ')), `devices.list on the peer: ${list.join(', ')}`);
});

test('--device adds exactly one node and rule; without it the node cannot be made or opened', async () => {
  // /dev/kmsg: not in the default list; writing to it needs no capability, so only the device rule decides
  const write = ['sh', '-c', 'echo "<7>tsmigrate device test" > /dev/kmsg && echo wrote'];
  await cliOk(A, ['run', '-d', 'dev', '--device', '/dev/kmsg:/dev/kmsg:w', '--image', 'debian', '--', 'sleep', '100000']);
  try {
    assert.match(await cliOk(A, ['exec', 'dev', '--', ...write]), /wrote/);
    const read = await cli(A, ['exec', 'dev', '--', 'sh', '-c', 'head -c1 /dev/kmsg']);
    assert.notEqual(read.code, 0, 'the rule gives write only');
    const i = JSON.parse(await cliOk(A, ['inspect', 'dev'])) as { security: { devices: string[]; deviceNodes: string[] } };
    assert.ok(i.security.devices.includes('c 1:11 w'), i.security.devices.join(', '));
    assert.deepEqual(i.security.deviceNodes, ['/dev/kmsg']);
  } finally {
    await cliOk(A, ['rm', '-f', 'dev']);
  }
  // conf was moved to B by the test before
  const r = await cli(B, ['exec', 'conf', '--', 'sh', '-c', 'ls /dev/kmsg || mknod /tmp/k c 1 11 || echo denied']);
  assert.match(r.stdout + r.stderr, /denied/);
});
