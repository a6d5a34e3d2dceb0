/**
 * Huge page limits, net_cls/net_prio and I/O throttles against the REAL cgroups of
 * this host (root; scripts/setup.sh mounts net_cls,net_prio on v1/hybrid hosts),
 * with a real block device (a loop device): written, read back, enforced by the
 * kernel (a throttled direct read takes as long as the rate says), and refused
 * with one clear line, writing nothing, where the host cannot carry them.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCgroupManager, type CgroupManager } from '../../../src/cgroup/manager.js';
import { detectLayout } from '../../../src/cgroup/detect.js';
import { realHostProbe } from '../../../src/cgroup/host.js';
import type { Limits } from '../../../src/cgroup/limits.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { attachLoop, timedDirectRead, type LoopDevice } from '../../helpers/loop.js';

const PARENT = 'tsmigrate-test-sub';
const layout = detectLayout();
const managers: CgroupManager[] = [];
const loops: LoopDevice[] = [];
const MB = 2 ** 20;

function manager(prefer?: 'v1' | 'v2'): CgroupManager {
  const m = createCgroupManager({ name: `sub-${randomBytes(4).toString('hex')}`, parent: PARENT, ...(prefer ? { prefer } : {}) });
  managers.push(m);
  return m;
}
function loop(): LoopDevice {
  const l = attachLoop();
  loops.push(l);
  return l;
}

after(async () => {
  for (const m of managers) {
    await m.killAll().catch(() => {});
    await m.destroy().catch(() => {});
  }
  const mounts = new Set<string>([...layout.v1.entries()].filter(([c]) => !c.startsWith('name=')).map(([, m]) => m));
  if (layout.v2Mount) mounts.add(layout.v2Mount);
  for (const mount of mounts) {
    const dir = path.join(mount, PARENT);
    try {
      rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  for (const l of loops) l.detach();
});

test('this host offers what the tests below use (scripts/setup.sh)', async () => {
  assert.ok((await realHostProbe().hugepageSizes()).includes('2MB'), 'the kernel offers 2MB huge pages');
  if (layout.kind !== 'v2') {
    assert.ok(layout.v1.has('net_cls') && layout.v1.has('net_prio'), 'net_cls and net_prio are mounted: run scripts/setup.sh (scripts/cgroup-net.sh)');
  }
});

test('applied, read back, and the throttle enforced by the kernel', { timeout: 60_000 }, async () => {
  const disk = loop();
  const m = manager();
  const limits: Limits = {
    hugetlb: [{ pageSize: '2MB', limitBytes: 64 * MB }],
    ...(m.kind === 'v1' ? { netClsClassid: 0x100001, netPrio: [{ iface: 'lo', priority: 5 }] } : {}),
    deviceReadBps: [{ path: disk.dev, rate: MB }],
    deviceWriteBps: [{ path: disk.dev, rate: 2 * MB }],
    deviceReadIops: [{ path: disk.dev, rate: 1000 }],
    deviceWriteIops: [{ path: disk.dev, rate: 300 }],
  };
  assert.deepEqual(await m.check(limits), []);
  await m.create();
  await m.apply(limits);
  assert.deepEqual(await m.readLimits(limits), limits);
  // in the kernel's own words, by device number
  if (m.kind === 'v1') {
    assert.equal(readFileSync(path.join(m.paths['blkio']!, 'blkio.throttle.read_bps_device'), 'utf8').trim(), `${disk.majmin} ${MB}`);
    assert.equal(readFileSync(path.join(m.paths['net_cls']!, 'net_cls.classid'), 'utf8').trim(), String(0x100001));
    assert.match(readFileSync(path.join(m.paths['net_prio']!, 'net_prio.ifpriomap'), 'utf8'), /^lo 5$/m);
    const hugeDir = m.paths['hugetlb'] ?? m.paths['unified']!;
    const hugeFile = m.paths['hugetlb'] ? 'hugetlb.2MB.limit_in_bytes' : 'hugetlb.2MB.max';
    assert.equal(readFileSync(path.join(hugeDir, hugeFile), 'utf8').trim(), String(64 * MB));
  } else {
    assert.match(readFileSync(path.join(m.paths['unified']!, 'io.max'), 'utf8'), new RegExp(`^${disk.majmin} rbps=${MB} wbps=${2 * MB} riops=1000 wiops=300$`, 'm'));
  }
  // 1.5 MiB at 1 MiB/s: about 1.5 s in the cgroup, next to nothing outside it
  const ioDir = m.paths['blkio'] ?? m.paths['unified']!;
  const free = await timedDirectRead(disk.dev, 1.5 * MB);
  const throttled = await timedDirectRead(disk.dev, 1.5 * MB, ioDir);
  assert.ok(free < 0.5, `unthrottled read took ${free} s`);
  assert.ok(throttled > 1.0 && throttled < 4, `throttled read took ${throttled} s`);
  await m.destroy();
});

test('refused with one clear line, nothing written, where this host cannot carry a limit', { timeout: 30_000 }, async () => {
  const m = manager();
  await m.create();
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-notdev-'));
  const file = path.join(dir, 'plain');
  writeFileSync(file, 'x');
  const cases: Array<[Limits, RegExp]> = [
    [{ memoryBytes: 64 * MB, hugetlb: [{ pageSize: '16GB', limitBytes: 0 }] }, /--hugetlb-limit 16GB: this host has no 16GB huge pages \(it offers 2MB/],
    [{ memoryBytes: 64 * MB, deviceReadBps: [{ path: file, rate: MB }] }, /--device-read-bps .*plain: a regular file, not a block device/],
    [{ memoryBytes: 64 * MB, deviceWriteIops: [{ path: '/dev/null', rate: 5 }] }, /--device-write-iops \/dev\/null: a character device, not a block device/],
    [{ memoryBytes: 64 * MB, deviceReadIops: [{ path: path.join(dir, 'gone'), rate: 5 }] }, /gone: no such device on this host/],
    ...(m.kind === 'v1' ? [[{ memoryBytes: 64 * MB, netPrio: [{ iface: 'tsmnope0', priority: 1 }] }, /--net-prio tsmnope0: this host has no network interface tsmnope0/] as [Limits, RegExp]] : []),
  ];
  const memDir = m.paths['memory'] ?? m.paths['unified']!;
  const memFile = m.paths['memory'] ? 'memory.limit_in_bytes' : 'memory.max';
  const before = readFileSync(path.join(memDir, memFile), 'utf8');
  for (const [limits, re] of cases) {
    const problems = await m.check(limits);
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.match(problems[0]!.message, re);
    await assert.rejects(m.apply(limits), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && re.test(e.message) && !!e.fix);
    assert.equal(readFileSync(path.join(memDir, memFile), 'utf8'), before, 'the memory limit given with it was not written');
  }
  // net_cls and net_prio with the v2 backend (this host's unified hierarchy): refused with the reason
  if (layout.v2Mount) {
    const v2 = createCgroupManager({ name: 'never-created', parent: PARENT, prefer: 'v2' });
    const p = await v2.check({ netClsClassid: 1, netPrio: [{ iface: 'lo', priority: 1 }] });
    assert.deepEqual(p.map((x) => x.code), ['ECGROUP_MISSING', 'ECGROUP_MISSING']);
    assert.match(p[0]!.message, /--net-cls-classid cannot be applied on this host: cgroup v2 \(the backend in use\) has no net_cls controller/);
    assert.equal(existsSync(v2.paths['unified']!), false, 'check creates nothing');
  }
  rmSync(dir, { recursive: true, force: true });
  await m.destroy();
});
