/**
 * A container with huge page, net_cls/net_prio and I/O throttle limits moved over
 * real SSH to a local peer (scripts/local-hosts.sh): the peer reads every limit
 * back from its kernel, having found the throttled device by its path; and a
 * device missing on the peer refuses the move in the pre-flight, nothing frozen.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectLayout } from '../../../src/cgroup/detect.js';
import type { Limits } from '../../../src/cgroup/limits.js';
import { cli, cliOk, tempRoot, CLI } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { attachLoop, deviceNode, timedDirectRead, type LoopDevice } from '../../helpers/loop.js';
import { Rig } from '../../helpers/rig.js';

const A = tempRoot('tsm-subA-');
const CFG = path.join(A, 'config.yaml');
const PEER = 'tsm-peer-s';
const rig = new Rig();
const env = { SSH_AUTH_SOCK: '' };
const MB = 2 ** 20;
const v1 = detectLayout().kind !== 'v2';
let B = '';
let scratch = '';
const loops: LoopDevice[] = [];
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });

before(async () => {
  scratch = mkdtempSync(path.join(tmpdir(), 'tsm-subdev-'));
  loops.push(attachLoop(), attachLoop());
  const h = await rig.start(PEER, '127.0.0.5', [A]);
  B = h.root;
  const cmd = [...h.addCommand];
  const i = cmd.indexOf('--known-hosts') + 1;
  copyFileSync(cmd[i]!, path.join(A, 'known_hosts'));
  cmd[i] = path.join(A, 'known_hosts');
  await TA(cmd);
  await importBusybox(A);
});
after(async () => {
  for (const n of ['lim', 'nodev']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll(PEER);
  for (const l of loops) l.detach();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(A, { recursive: true, force: true });
});

/** `tsmigrate --json move`: exit code, stderr and the phases it reported. */
function move(name: string): Promise<{ code: number; stderr: string; phases: string[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, '--root', A, '--config', CFG, '--json', 'move', name, PEER], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => {
      const phases = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; phase?: string }).filter((e) => e.event === 'progress').map((e) => e.phase!);
      resolve({ code: code ?? -1, stderr, phases });
    });
  });
}

interface Inspect { status: string; cgroup: { limits: Limits; paths: Record<string, string> } }
const inspect = async (root: string, name: string) => JSON.parse(await cliOk(root, ['inspect', name])) as Inspect;
const stateOn = async (root: string, name: string) =>
  (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === name)?.state;

test('moved over SSH: the peer applies and reads back every limit, the device found there by its path', { timeout: 240_000 }, async () => {
  const [d1, d2] = loops as [LoopDevice, LoopDevice];
  const disk = path.join(scratch, 'disk');
  deviceNode(disk, d1.majmin);
  await TA(['run', '-d', 'lim', '--image', 'busybox', '--memory', '64m',
    '--hugetlb-limit', '2MB:32m', ...(v1 ? ['--net-cls-classid', '0x100001', '--net-prio', 'lo=5'] : []),
    '--device-read-bps', `${disk}:1mb`, '--device-write-iops', `${disk}:250`, '--', 'sleep', '1000']);
  const want: Limits = {
    memoryBytes: 64 * MB,
    hugetlb: [{ pageSize: '2MB', limitBytes: 32 * MB }],
    ...(v1 ? { netClsClassid: 0x100001, netPrio: [{ iface: 'lo', priority: 5 }] } : {}),
    deviceReadBps: [{ path: disk, rate: MB }],
    deviceWriteIops: [{ path: disk, rate: 250 }],
  };
  assert.deepEqual((await inspect(A, 'lim')).cgroup.limits, want);
  // the same path names another disk by the time the peer looks it up
  deviceNode(disk, d2.majmin);
  const r = await move('lim');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await stateOn(A, 'lim'), undefined, 'gone from A');
  const b = await inspect(B, 'lim');
  assert.equal(b.status, 'running');
  assert.deepEqual(b.cgroup.limits, want, 'every limit read back on the peer');
  const ioDir = b.cgroup.paths['blkio'] ?? b.cgroup.paths['unified']!;
  const file = b.cgroup.paths['blkio'] ? 'blkio.throttle.read_bps_device' : 'io.max';
  assert.match(readFileSync(path.join(ioDir, file), 'utf8'), new RegExp(`^${d2.majmin} (rbps=)?${MB}\\b`, 'm'), 'the peer throttles the device the path names there');
  const secs = await timedDirectRead(d2.dev, MB, ioDir);
  assert.ok(secs > 0.6, `a 1 MiB direct read in the moved container's cgroup took ${secs} s at 1 MiB/s`);
  await TB(['rm', '-f', 'lim']);
});

test('a throttled device missing on the peer: refused in the pre-flight, nothing frozen, nothing on the peer', { timeout: 120_000 }, async () => {
  const disk = path.join(scratch, 'disk2');
  deviceNode(disk, loops[0]!.majmin);
  await TA(['run', '-d', 'nodev', '--image', 'busybox', '--device-write-bps', `${disk}:4m`, '--', 'sleep', '1000']);
  rmSync(disk);
  const check = await cli(A, ['--config', CFG, 'host', 'check', PEER, 'nodev'], { env });
  assert.equal(check.code, 1);
  assert.match(check.stdout, /devices: --device-write-bps .*disk2: no such device on the peer/);
  const r = await move('nodev');
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /cannot take "nodev": --device-write-bps .*disk2: no such device on the peer/);
  assert.ok(r.phases.includes('preflight') && !r.phases.includes('freeze') && !r.phases.includes('dump'), `phases: ${r.phases.join(',')}`);
  assert.equal(await stateOn(A, 'nodev'), 'running', 'still running on A, never frozen');
  assert.equal(await stateOn(B, 'nodev'), undefined);
  assert.deepEqual(leftovers(B, 'nodev'), []);
  await TA(['rm', '-f', 'nodev']);
});
