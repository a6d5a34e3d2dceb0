/**
 * Both backends applying huge page, net_cls/net_prio and throttle limits to a fake
 * cgroupfs (plain files in a temp dir), with a fake host probe: which file each
 * limit goes to on v1, hybrid and v2 layouts, and refusals that write nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isTsmError, type ErrorCode } from '../../../src/errors/errors.js';
import { createCgroupManager } from '../../../src/cgroup/manager.js';
import type { Layout } from '../../../src/cgroup/detect.js';
import type { DeviceFact, HostProbe } from '../../../src/cgroup/host.js';
import type { Limits } from '../../../src/cgroup/limits.js';

const MB = 2 ** 20;
const isCode = (code: ErrorCode, re: RegExp) => (e: unknown) => isTsmError(e, code) && re.test(e.message);

function fake(dir: string, files: Record<string, string> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(path.join(dir, f), v);
  return dir;
}
const read = (dir: string, f: string) => readFileSync(path.join(dir, f), 'utf8');

function withTmp(fn: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'tsm-cgx-'));
    try {
      await fn(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

const DEVICES = new Map<string, DeviceFact>([
  ['/dev/disk1', { kind: 'block', dev: '7:3', partition: false }],
  ['/etc/hosts', { kind: 'other', what: 'a regular file' }],
]);
const probe: HostProbe = {
  hugepageSizes: async () => ['2MB', '1GB'],
  device: async (p) => DEVICES.get(p) ?? { kind: 'missing' },
  interfaces: async () => ['eth0', 'lo'],
};

const THROTTLE_FILES = ['read_bps', 'write_bps', 'read_iops', 'write_iops'].map((k) => `blkio.throttle.${k}_device`);
const UNLIMITED = '9223372036854771712';
const LEAF: Record<string, Record<string, string>> = {
  memory: { 'memory.limit_in_bytes': UNLIMITED },
  blkio: Object.fromEntries(THROTTLE_FILES.map((f) => [f, ''])),
  hugetlb: { 'hugetlb.2MB.limit_in_bytes': '9223372036854771712', 'hugetlb.1GB.limit_in_bytes': '9223372036854771712', 'hugetlb.2MB.rsvd.limit_in_bytes': '9223372036854771712' },
  'net_cls,net_prio': { 'net_cls.classid': '0', 'net_prio.ifpriomap': 'eth0 0\nlo 0\n' },
  unified: { 'hugetlb.2MB.max': 'max', 'hugetlb.1GB.max': 'max', 'cgroup.controllers': '', 'cgroup.subtree_control': '' },
};

/** A v1 (or, with `unified`, hybrid) host; hugetlb in v1 unless `hugetlbIn` says cgroup2. */
function v1Fake(root: string, o: { net?: boolean; hugetlbIn?: 'v1' | 'unified' | 'none'; throttling?: boolean } = {}): Layout {
  const v1 = new Map<string, string>();
  const hier = ['cpu', 'cpuacct', 'cpuset', 'memory', 'freezer', 'blkio', 'pids'];
  if (o.net !== false) hier.push('net_cls,net_prio');
  if ((o.hugetlbIn ?? 'v1') === 'v1') hier.push('hugetlb');
  for (const h of hier) {
    const mount = path.join(root, h);
    for (const c of h.split(',')) v1.set(c, mount);
    const rootFiles = h === 'blkio' && o.throttling !== false ? LEAF['blkio'] : h === 'cpuset' ? { 'cpuset.cpus': '0-1', 'cpuset.mems': '0' } : {};
    fake(mount, { 'cgroup.procs': '', ...rootFiles });
    fake(path.join(mount, 'tsmigrate', 'c1'), { 'cgroup.procs': '', ...(h === 'blkio' && o.throttling === false ? {} : LEAF[h] ?? {}) });
  }
  const layout: Layout = { kind: 'v1', root, v1, v2Controllers: [] };
  if (o.hugetlbIn === 'unified') {
    const u = path.join(root, 'unified');
    fake(u, { 'cgroup.controllers': 'hugetlb', 'cgroup.subtree_control': '' });
    fake(path.join(u, 'tsmigrate'), { 'cgroup.controllers': 'hugetlb', 'cgroup.subtree_control': '' });
    fake(path.join(u, 'tsmigrate', 'c1'), { 'cgroup.procs': '', ...LEAF['unified'] });
    Object.assign(layout, { kind: 'hybrid', v2Mount: u, v2Controllers: ['hugetlb'] });
  }
  return layout;
}

const ALL: Limits = {
  hugetlb: [{ pageSize: '2MB', limitBytes: 64 * MB }, { pageSize: '1GB', limitBytes: 0 }],
  netClsClassid: 0x100001,
  netPrio: [{ iface: 'lo', priority: 5 }],
  deviceReadBps: [{ path: '/dev/disk1', rate: MB }],
  deviceWriteIops: [{ path: '/dev/disk1', rate: 100 }],
};

test('v1: every new limit goes to its controller; the reservation limit only where the kernel has it', withTmp(async (root) => {
  const m = createCgroupManager({ name: 'c1', layout: v1Fake(root), probe });
  const dir = (h: string) => path.join(root, h, 'tsmigrate', 'c1');
  assert.deepEqual(await m.check(ALL), []);
  await m.apply(ALL);
  assert.equal(read(dir('hugetlb'), 'hugetlb.2MB.limit_in_bytes'), String(64 * MB));
  assert.equal(read(dir('hugetlb'), 'hugetlb.2MB.rsvd.limit_in_bytes'), String(64 * MB));
  assert.equal(read(dir('hugetlb'), 'hugetlb.1GB.limit_in_bytes'), '0');
  assert.equal(existsSync(path.join(dir('hugetlb'), 'hugetlb.1GB.rsvd.limit_in_bytes')), false, 'no .rsvd file: not created');
  assert.equal(read(dir('net_cls,net_prio'), 'net_cls.classid'), '1048577');
  assert.equal(read(dir('net_cls,net_prio'), 'net_prio.ifpriomap'), 'lo 5');
  assert.equal(read(dir('blkio'), 'blkio.throttle.read_bps_device'), `7:3 ${MB}`);
  assert.equal(read(dir('blkio'), 'blkio.throttle.write_iops_device'), '7:3 100');
  assert.deepEqual(await m.readLimits(ALL), ALL, 'read back by the config\'s device path');
  assert.deepEqual((await m.readLimits()).deviceReadBps, [{ path: '/sys/dev/block/7:3', rate: MB }], 'or by device number');
}));

test('hybrid: huge page limits go to the unified hierarchy, with hugetlb enabled down the parent', withTmp(async (root) => {
  const m = createCgroupManager({ name: 'c1', layout: v1Fake(root, { hugetlbIn: 'unified' }), probe });
  const u = path.join(root, 'unified');
  await m.apply({ hugetlb: [{ pageSize: '2MB', limitBytes: 4 * MB }] });
  assert.equal(read(u, 'cgroup.subtree_control'), '+hugetlb');
  assert.equal(read(path.join(u, 'tsmigrate'), 'cgroup.subtree_control'), '+hugetlb');
  assert.equal(read(path.join(u, 'tsmigrate', 'c1'), 'hugetlb.2MB.max'), String(4 * MB));
  assert.deepEqual((await m.readLimits()).hugetlb, [{ pageSize: '2MB', limitBytes: 4 * MB }]);
  // no hugetlb limit: the unified hierarchy is left as it was
  const m2 = createCgroupManager({ name: 'c1', layout: v1Fake(path.join(root, 'b'), { hugetlbIn: 'unified' }), probe });
  await m2.apply({ memoryBytes: MB });
  assert.equal(read(path.join(root, 'b', 'unified'), 'cgroup.subtree_control'), '');
}));

test('v1: refusals name the problem and write nothing', withTmp(async (root) => {
  const cases: Array<[string, Parameters<typeof v1Fake>[1], Limits, ErrorCode, RegExp]> = [
    ['net_cls not mounted', { net: false }, { netClsClassid: 1 }, 'ECGROUP_MISSING', /--net-cls-classid cannot be applied on this host: the net_cls cgroup controller is not mounted/],
    ['net_prio not mounted', { net: false }, { netPrio: [{ iface: 'lo', priority: 1 }] }, 'ECGROUP_MISSING', /the net_prio cgroup controller is not mounted/],
    ['no hugetlb anywhere', { hugetlbIn: 'none' }, { hugetlb: [{ pageSize: '2MB', limitBytes: 0 }] }, 'ECGROUP_MISSING', /hugetlb controller is neither mounted/],
    ['no throttling in the kernel', { throttling: false }, { deviceReadBps: [{ path: '/dev/disk1', rate: 1 }] }, 'ECGROUP_MISSING', /no block I\/O throttling/],
    ['missing device', {}, { memoryBytes: MB, deviceReadBps: [{ path: '/dev/nope', rate: 1 }] }, 'EINVAL_ARG', /--device-read-bps \/dev\/nope: no such device on this host/],
    ['not a block device', {}, { deviceWriteBps: [{ path: '/etc/hosts', rate: 1 }] }, 'EINVAL_ARG', /\/etc\/hosts: a regular file, not a block device/],
    ['page size not offered', {}, { hugetlb: [{ pageSize: '16GB', limitBytes: 0 }] }, 'EINVAL_ARG', /no 16GB huge pages \(it offers 2MB, 1GB\)/],
    ['interface not on the host', {}, { netPrio: [{ iface: 'eth7', priority: 1 }] }, 'EINVAL_ARG', /no network interface eth7/],
  ];
  for (const [what, layoutOpts, limits, code, re] of cases) {
    const r = path.join(root, what.replace(/\W+/g, '-'));
    const m = createCgroupManager({ name: 'c1', layout: v1Fake(r, layoutOpts), probe });
    const problems = await m.check(limits);
    assert.equal(problems.length, 1, what);
    assert.match(problems[0]!.message, re, what);
    await assert.rejects(m.apply(limits), isCode(code, re), what);
    assert.equal(read(path.join(r, 'memory', 'tsmigrate', 'c1'), 'memory.limit_in_bytes'), UNLIMITED, `${what}: the memory limit before it was not written either`);
  }
}));

test('v2: io.max and hugetlb files; net_cls and net_prio refused with the reason', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': 'io memory hugetlb', 'cgroup.subtree_control': '' });
  fake(path.join(root, 'tsmigrate'), { 'cgroup.controllers': 'io memory hugetlb', 'cgroup.subtree_control': '' });
  const dir = fake(path.join(root, 'tsmigrate', 'c1'), { 'cgroup.controllers': 'io memory hugetlb', 'io.max': '', 'hugetlb.2MB.max': 'max', 'hugetlb.2MB.rsvd.max': 'max', 'hugetlb.1GB.max': 'max' });
  const layout: Layout = { kind: 'v2', root, v1: new Map(), v2Mount: root, v2Controllers: ['io', 'memory', 'hugetlb'] };
  const m = createCgroupManager({ name: 'c1', layout, probe });
  await m.create();
  assert.match(read(root, 'cgroup.subtree_control'), /\+hugetlb/);
  const refused: Array<[Limits, RegExp]> = [
    [{ netClsClassid: 5 }, /--net-cls-classid cannot be applied on this host: cgroup v2 \(the backend in use\) has no net_cls controller/],
    [{ netPrio: [{ iface: 'lo', priority: 1 }] }, /--net-prio .*no net_prio controller/],
  ];
  for (const [limits, re] of refused) {
    await assert.rejects(m.apply(limits), isCode('ECGROUP_MISSING', re));
  }
  const { netClsClassid: _c, netPrio: _p, ...v2Limits } = ALL;
  await m.apply(v2Limits);
  assert.equal(read(dir, 'io.max'), `7:3 rbps=${MB} wiops=100`);
  assert.equal(read(dir, 'hugetlb.2MB.max'), String(64 * MB));
  assert.equal(read(dir, 'hugetlb.2MB.rsvd.max'), String(64 * MB));
  assert.equal(read(dir, 'hugetlb.1GB.max'), '0');
  writeFileSync(path.join(dir, 'io.max'), `7:3 rbps=${MB} wbps=max riops=max wiops=100\n`); // as the kernel shows it
  assert.deepEqual(await m.readLimits(ALL), v2Limits);
  // a host whose cgroup2 offers neither hugetlb nor io
  writeFileSync(path.join(root, 'cgroup.controllers'), 'memory');
  const problems = await m.check(v2Limits);
  assert.deepEqual(problems.map((p) => p.code), ['ECGROUP_MISSING', 'ECGROUP_MISSING']);
  assert.match(problems[0]!.message, /--hugetlb-limit .*does not offer the hugetlb controller/);
  assert.match(problems[1]!.message, /--device-read-bps, --device-write-iops .*does not offer the io controller/);
}));
