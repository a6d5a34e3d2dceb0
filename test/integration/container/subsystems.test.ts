/**
 * `run --hugetlb-limit/--net-cls-classid/--net-prio/--device-*-bps/--device-*-iops`
 * through the real CLI: inspect reads each back from the kernel, a checkpoint and
 * its restore carry them all, and bad input is refused with one line and nothing made.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { detectLayout } from '../../../src/cgroup/detect.js';
import type { Limits } from '../../../src/cgroup/limits.js';
import { cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { attachLoop, type LoopDevice } from '../../helpers/loop.js';

const root = tempRoot();
const MB = 2 ** 20;
const v1 = detectLayout().kind !== 'v2';
let disk: LoopDevice;
let scratch = '';

before(async () => {
  disk = attachLoop();
  scratch = mkdtempSync(path.join(tmpdir(), 'tsm-sub-'));
  await importBusybox(root);
});
after(async () => {
  for (const n of ['lim', 'bad']) await cli(root, ['rm', '-f', n]);
  disk.detach();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
});

interface Inspect { status: string; config: { limits: Limits }; cgroup: { limits: Limits; paths: Record<string, string> } }
const inspect = async (name: string) => JSON.parse(await cliOk(root, ['inspect', name])) as Inspect;

test('run: every limit is in the config and read back from the kernel; checkpoint and restore carry them', { timeout: 120_000 }, async () => {
  const flags = [
    '--hugetlb-limit', '2MB:64m', '--hugetlb-limit', '1GB:0',
    ...(v1 ? ['--net-cls-classid', '10:1', '--net-prio', 'lo=5'] : []),
    '--device-read-bps', `${disk.dev}:1mb`, '--device-write-bps', `${disk.dev}:2m`,
    '--device-read-iops', `${disk.dev}:1000`, '--device-write-iops', `${disk.dev}:300`,
  ];
  await cliOk(root, ['run', '-d', 'lim', '--image', 'busybox', '--memory', '64m', ...flags, '--', 'sleep', '1000']);
  const want: Limits = {
    memoryBytes: 64 * MB,
    hugetlb: [{ pageSize: '2MB', limitBytes: 64 * MB }, { pageSize: '1GB', limitBytes: 0 }],
    ...(v1 ? { netClsClassid: 0x100001, netPrio: [{ iface: 'lo', priority: 5 }] } : {}),
    deviceReadBps: [{ path: disk.dev, rate: MB }],
    deviceWriteBps: [{ path: disk.dev, rate: 2 * MB }],
    deviceReadIops: [{ path: disk.dev, rate: 1000 }],
    deviceWriteIops: [{ path: disk.dev, rate: 300 }],
  };
  const a = await inspect('lim');
  assert.deepEqual(a.config.limits, want, 'the config keeps the device path and the numbers');
  assert.deepEqual(a.cgroup.limits, want, 'read back from the kernel');

  await cliOk(root, ['checkpoint', 'lim', '--stop'], { timeoutMs: 60000 });
  const [ck] = JSON.parse(await cliOk(root, ['--json', 'checkpoints', 'lim'])) as Array<{ id: string }>;
  const manifest = JSON.parse(readFileSync(path.join(root, 'checkpoints', ck!.id, 'manifest.json'), 'utf8')) as { container: { limits: Limits } };
  assert.deepEqual(manifest.container.limits, want, 'the checkpoint carries them');
  await cliOk(root, ['restore', ck!.id], { timeoutMs: 60000 });
  const b = await inspect('lim');
  assert.equal(b.status, 'running');
  assert.deepEqual(b.cgroup.limits, want, 'the restored container has them all again');
});

test('bad input: one clear line, nothing created', { timeout: 60_000 }, async () => {
  const plain = path.join(scratch, 'plain');
  writeFileSync(plain, 'x');
  const cases: Array<[string[], RegExp, number, NodeJS.ProcessEnv?]> = [
    [['--hugetlb-limit', '3MB:6m'], /huge page size "3MB" is not a power of two/, 2],
    [['--hugetlb-limit', '16GB:16g'], /--hugetlb-limit 16GB: this host has no 16GB huge pages \(it offers 2MB/, 2],
    [['--hugetlb-limit', '2MB:5m'], /not a whole number of 2MB pages.*2MB:4m/, 2],
    [['--hugetlb-limit', '2MB:lots'], /invalid size "lots"/, 2],
    [['--net-prio', 'lo'], /invalid --net-prio "lo": no '='/, 2],
    [['--net-cls-classid', 'x1'], /invalid --net-cls-classid "x1"/, 2],
    [['--device-read-iops', `${disk.dev}:0`], /not a positive number of operations per second/, 2],
    [['--device-write-iops', `${disk.dev}:-3`], /not a positive number of operations per second/, 2],
    [['--device-read-bps', `${plain}:1mb`], /--device-read-bps .*plain: a regular file, not a block device; name a whole block device/, 2],
    [['--device-write-bps', '/dev/null:1mb'], /\/dev\/null: a character device, not a block device/, 2],
    [['--device-read-bps', `${scratch}/gone:1mb`], /gone: no such device on this host/, 2],
    [['--net-cls-classid', '10:1'], /--net-cls-classid cannot be applied on this host: cgroup v2 \(the backend in use\) has no net_cls controller/, 1, { TSMIGRATE_CGROUP_PREFER: 'v2' }],
    [['--net-prio', 'lo=1'], /--net-prio cannot be applied on this host: cgroup v2 \(the backend in use\)/, 1, { TSMIGRATE_CGROUP_PREFER: 'v2' }],
  ];
  for (const [flags, want, code, env] of cases) {
    const r = await cli(root, ['run', '-d', 'bad', '--image', 'busybox', '--memory', '32m', ...flags, '--', 'sleep', '100'], env ? { env } : {});
    assert.equal(r.code, code, `${flags.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, want);
    assert.deepEqual(leftovers(root, 'bad'), [], `${flags.join(' ')} left nothing`);
  }
  assert.deepEqual(readdirSync(path.join(root, 'containers')).sort(), ['lim']);
});
