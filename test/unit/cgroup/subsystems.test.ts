/**
 * Huge pages, net_cls/net_prio and I/O throttles, pure parts: parsing the run
 * flags, planning the v1/v2 files, reading them back, the host check, and the
 * agent schema for configs arriving from a peer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTsmError } from '../../../src/errors/errors.js';
import { canonicalHugetlb, pageSizeFromSysfs, pageSizeName, parseHugetlbLimit, parsePageSize } from '../../../src/cgroup/hugetlb.js';
import { parseV1Limits, parseV2Limits, v1Files, v2Files, type Limits } from '../../../src/cgroup/limits.js';
import { canonicalNetPrio, classidHandle, parseIfpriomap, parseNetClsClassid, parseNetPrio } from '../../../src/cgroup/netclass.js';
import { limitProblems, subsystemsOf, type HostFacts } from '../../../src/cgroup/support.js';
import { canonicalRates, ioMaxLines, parseDeviceRate, parseIoMax, THROTTLES } from '../../../src/cgroup/throttle.js';
import { splitDev } from '../../../src/cgroup/host.js';
import { limits as limitsSchema } from '../../../src/agent/schema.js';
import { parseRunRequest } from '../../../src/cli/parse.js';

const MB = 2 ** 20;
const GB = 2 ** 30;
const rejects = (fn: () => unknown, re: RegExp) =>
  assert.throws(fn, (e: unknown) => isTsmError(e, 'EINVAL_ARG') && re.test(e.message) && !!e.fix && !e.message.includes('\n'));
const kind = (flag: string) => THROTTLES.find((k) => k.flag === flag)!;

test('huge page sizes: user forms, kernel names, sysfs entries', () => {
  const sizes: Array<[string, number, string]> = [
    ['2MB', 2 * MB, '2MB'], ['2m', 2 * MB, '2MB'], ['2048kB', 2 * MB, '2MB'], ['1G', GB, '1GB'], ['1GiB', GB, '1GB'],
    ['64KB', 64 * 1024, '64KB'], ['16GB', 16 * GB, '16GB'],
  ];
  for (const [s, bytes, name] of sizes) {
    assert.equal(parsePageSize(s), bytes, s);
    assert.equal(pageSizeName(bytes), name, s);
  }
  for (const s of ['3MB', '2', 'MB', '2TB', '1KB', '32GB', '2.5MB', '', '0MB']) rejects(() => parsePageSize(s), /huge page size/);
  assert.equal(pageSizeFromSysfs('hugepages-2048kB'), '2MB');
  assert.equal(pageSizeFromSysfs('hugepages-1048576kB'), '1GB');
  assert.equal(pageSizeFromSysfs('hugepages-64kB'), '64KB');
  assert.equal(pageSizeFromSysfs('something'), undefined);
});

test('--hugetlb-limit PAGESIZE:LIMIT', () => {
  const ok: Array<[string, string, number]> = [
    ['2MB:64m', '2MB', 64 * MB], ['2mb:2m', '2MB', 2 * MB], ['1GB:2g', '1GB', 2 * GB], ['2MB:0', '2MB', 0],
    ['2048kB:4194304', '2MB', 4 * MB],
  ];
  for (const [s, pageSize, limitBytes] of ok) assert.deepEqual(parseHugetlbLimit(s), { pageSize, limitBytes }, s);
  const bad: Array<[string, RegExp]> = [
    ['2MB', /expected PAGESIZE:LIMIT/], ['2MB:', /expected PAGESIZE:LIMIT/], [':64m', /expected PAGESIZE:LIMIT/],
    ['3MB:64m', /not a power of two/], ['xx:64m', /invalid huge page size/], ['2MB:abc', /invalid size/],
    ['2MB:3m', /not a whole number of 2MB pages/], ['1GB:1536m', /not a whole number of 1GB pages/], ['2MB:-2m', /invalid size/],
  ];
  for (const [s, re] of bad) rejects(() => parseHugetlbLimit(s), re);
  assert.throws(() => parseHugetlbLimit('2MB:3m'), (e: unknown) => isTsmError(e) && /2MB:2m/.test(e.fix ?? ''), 'the fix suggests a whole number of pages');
  assert.deepEqual(canonicalHugetlb([{ pageSize: '1GB', limitBytes: GB }, { pageSize: '2MB', limitBytes: 0 }]).map((h) => h.pageSize), ['2MB', '1GB']);
  rejects(() => canonicalHugetlb([parseHugetlbLimit('2MB:2m'), parseHugetlbLimit('2m:4m')]), /2MB page size twice/);
});

test('--net-cls-classid: tc handle, hex or decimal; --net-prio IFACE=PRIO', () => {
  const ok: Array<[string, number]> = [['0x100001', 0x100001], ['10:1', 0x100001], ['1048577', 0x100001], ['ffff:ffff', 0xffffffff], ['0xFFFFFFFF', 0xffffffff], ['1:0', 0x10000]];
  for (const [s, n] of ok) assert.equal(parseNetClsClassid(s), n, s);
  for (const [s, re] of [['0', /no class/], ['0x0', /no class/], ['0:0', /no class/], ['0x100000000', /invalid/], ['4294967296', /larger than 32 bits/], ['10:', /invalid/], ['abc', /invalid/], ['-1', /invalid/], ['10:1:1', /invalid/]] as const) {
    rejects(() => parseNetClsClassid(s), re);
  }
  assert.equal(classidHandle(0x100001), '10:1');
  assert.deepEqual(parseNetPrio('eth0=5'), { iface: 'eth0', priority: 5 });
  assert.deepEqual(parseNetPrio('lo=0'), { iface: 'lo', priority: 0 });
  assert.deepEqual(parseNetPrio('br-1.2=4294967295'), { iface: 'br-1.2', priority: 4294967295 });
  const bad: Array<[string, RegExp]> = [
    ['eth0', /no '='/], ['eth0:5', /no '='/], ['=5', /not an interface name/], ['a/b=1', /not an interface name/],
    ['averyveryverylongname=1', /not an interface name/], ['eth0=', /priority "" is not/], ['eth0=-1', /priority "-1"/],
    ['eth0=4294967296', /priority/], ['eth0=x', /priority/],
  ];
  for (const [s, re] of bad) rejects(() => parseNetPrio(s), re);
  rejects(() => canonicalNetPrio([parseNetPrio('lo=1'), parseNetPrio('lo=2')]), /lo twice/);
  assert.deepEqual(parseIfpriomap('eth0 0\nlo 5\ntsm0 7\n'), [{ iface: 'lo', priority: 5 }, { iface: 'tsm0', priority: 7 }]);
});

test('--device-read-bps/--device-write-bps/--device-read-iops/--device-write-iops DEVICE:RATE', () => {
  const ok: Array<[string, string, { path: string; rate: number }]> = [
    ['--device-read-bps', '/dev/sda:1mb', { path: '/dev/sda', rate: MB }],
    ['--device-write-bps', '/dev/sda:10m', { path: '/dev/sda', rate: 10 * MB }],
    ['--device-read-bps', '/dev/disk/by-id/a:b:512k', { path: '/dev/disk/by-id/a:b', rate: 512 * 1024 }],
    ['--device-read-iops', '/dev/loop0:100', { path: '/dev/loop0', rate: 100 }],
    ['--device-write-iops', '/dev/vda:4294967295', { path: '/dev/vda', rate: 4294967295 }],
  ];
  for (const [flag, s, want] of ok) assert.deepEqual(parseDeviceRate(kind(flag), s), want, `${flag} ${s}`);
  const bad: Array<[string, string, RegExp]> = [
    ['--device-read-bps', '/dev/sda', /expected DEVICE:RATE/], ['--device-read-bps', 'sda:1m', /absolute path/],
    ['--device-read-bps', ':1m', /absolute path/], ['--device-read-bps', '/dev/sda:0', /must be greater than 0/],
    ['--device-read-bps', '/dev/sda:-1m', /invalid size/], ['--device-write-bps', '/dev/sda:fast', /invalid size/],
    ['--device-read-iops', '/dev/sda:0', /not a positive number/], ['--device-read-iops', '/dev/sda:-5', /not a positive number/],
    ['--device-write-iops', '/dev/sda:1.5', /not a positive number/], ['--device-write-iops', '/dev/sda:4294967296', /not a positive number/],
    ['--device-write-iops', '/dev/sda:1k', /not a positive number/],
  ];
  for (const [flag, s, re] of bad) rejects(() => parseDeviceRate(kind(flag), s), new RegExp(`${flag}.*${re.source}`));
  const k = kind('--device-read-bps');
  assert.deepEqual(canonicalRates(k, [{ path: '/dev/b', rate: 1 }, { path: '/dev/a', rate: 2 }]).map((r) => r.path), ['/dev/a', '/dev/b']);
  rejects(() => canonicalRates(k, [{ path: '/dev/a', rate: 1 }, { path: '/dev/a', rate: 2 }]), /--device-read-bps gives \/dev\/a twice/);
});

test('device numbers from a 64-bit dev_t', () => {
  assert.equal(splitDev(0x0700n), '7:0');
  assert.equal(splitDev(0xfe01n), '254:1');
  // major 259 (blkext), minor 300: glibc's makedev
  const dev = (259n & 0xfffn) << 8n | (300n & 0xffn) | ((300n & ~0xffn) << 12n) | ((259n & ~0xfffn) << 32n);
  assert.equal(splitDev(dev), '259:300');
});

const FULL: Limits = {
  hugetlb: [{ pageSize: '2MB', limitBytes: 64 * MB }, { pageSize: '1GB', limitBytes: 2 * GB }],
  netClsClassid: 0x100001,
  netPrio: [{ iface: 'eth0', priority: 5 }, { iface: 'lo', priority: 2 }],
  deviceReadBps: [{ path: '/dev/a', rate: MB }, { path: '/dev/b', rate: 2 * MB }],
  deviceWriteBps: [{ path: '/dev/a', rate: 3 * MB }],
  deviceReadIops: [{ path: '/dev/b', rate: 100 }],
  deviceWriteIops: [{ path: '/dev/a', rate: 200 }],
};
const DEVS = new Map([['/dev/a', '7:0'], ['/dev/b', '254:16']]);
const NAMES = new Map([['7:0', '/dev/a'], ['254:16', '/dev/b']]);

test('planning: v1 files (hugetlb in v1 or in the unified hierarchy), v2 files, and reading them back', () => {
  const v1 = v1Files(FULL, { devices: DEVS, hugetlbOn: 'v1' });
  assert.deepEqual(v1, [
    { controller: 'hugetlb', file: 'hugetlb.2MB.limit_in_bytes', value: String(64 * MB) },
    { controller: 'hugetlb', file: 'hugetlb.2MB.rsvd.limit_in_bytes', value: String(64 * MB), optional: true },
    { controller: 'hugetlb', file: 'hugetlb.1GB.limit_in_bytes', value: String(2 * GB) },
    { controller: 'hugetlb', file: 'hugetlb.1GB.rsvd.limit_in_bytes', value: String(2 * GB), optional: true },
    { controller: 'net_cls', file: 'net_cls.classid', value: '1048577' },
    { controller: 'net_prio', file: 'net_prio.ifpriomap', value: 'eth0 5' },
    { controller: 'net_prio', file: 'net_prio.ifpriomap', value: 'lo 2' },
    { controller: 'blkio', file: 'blkio.throttle.read_bps_device', value: `7:0 ${MB}` },
    { controller: 'blkio', file: 'blkio.throttle.read_bps_device', value: `254:16 ${2 * MB}` },
    { controller: 'blkio', file: 'blkio.throttle.write_bps_device', value: `7:0 ${3 * MB}` },
    { controller: 'blkio', file: 'blkio.throttle.read_iops_device', value: '254:16 100' },
    { controller: 'blkio', file: 'blkio.throttle.write_iops_device', value: '7:0 200' },
  ]);
  const hybrid = v1Files({ hugetlb: FULL.hugetlb! }, { hugetlbOn: 'unified' });
  assert.deepEqual(hybrid.map((f) => `${f.controller} ${f.file}`), [
    'unified hugetlb.2MB.max', 'unified hugetlb.2MB.rsvd.max', 'unified hugetlb.1GB.max', 'unified hugetlb.1GB.rsvd.max',
  ]);
  const v2 = v2Files({ ...FULL, netClsClassid: undefined, netPrio: undefined } as Limits, { devices: DEVS });
  assert.deepEqual(v2.filter((f) => f.file === 'io.max').map((f) => f.value), [`7:0 rbps=${MB} wbps=${3 * MB} wiops=200`, `254:16 rbps=${2 * MB} riops=100`]);
  assert.deepEqual(v2.filter((f) => f.file.startsWith('hugetlb')).map((f) => f.file), ['hugetlb.2MB.max', 'hugetlb.2MB.rsvd.max', 'hugetlb.1GB.max', 'hugetlb.1GB.rsvd.max']);
  rejects(() => v1Files({ hugetlb: [{ pageSize: '2MB/../../x', limitBytes: 0 }] }), /not a kernel page-size name/);
  assert.throws(() => ioMaxLines({ deviceReadBps: [{ path: '/dev/unresolved', rate: 1 }] }, DEVS), (e: unknown) => isTsmError(e, 'EINTERNAL'));

  // what the kernel shows after those writes reads back as the same limits
  const v1Shown = {
    'hugetlb.2MB.limit_in_bytes': String(64 * MB), 'hugetlb.1GB.limit_in_bytes': String(2 * GB), 'hugetlb.64KB.limit_in_bytes': '9223372036854710272',
    'net_cls.classid': '1048577', 'net_prio.ifpriomap': 'eth0 5\nlo 2\ntsm0 0',
    'blkio.throttle.read_bps_device': `7:0 ${MB}\n254:16 ${2 * MB}`, 'blkio.throttle.write_bps_device': `7:0 ${3 * MB}`,
    'blkio.throttle.read_iops_device': '254:16 100', 'blkio.throttle.write_iops_device': '7:0 200',
  };
  assert.deepEqual(parseV1Limits(v1Shown, { deviceNames: NAMES }), FULL);
  const v2Shown = {
    'hugetlb.2MB.max': String(64 * MB), 'hugetlb.1GB.max': String(2 * GB), 'hugetlb.64KB.max': 'max',
    'io.max': `7:0 rbps=${MB} wbps=${3 * MB} riops=max wiops=200\n254:16 rbps=${2 * MB} wbps=max riops=100 wiops=max`,
  };
  const { netClsClassid: _c, netPrio: _p, ...noNet } = FULL;
  assert.deepEqual(parseV2Limits(v2Shown, { deviceNames: NAMES }), noNet);
  // a device the config does not name reads back by its sysfs entry
  assert.deepEqual(parseIoMax('8:0 rbps=5 wbps=max riops=max wiops=max', new Map()), { deviceReadBps: [{ path: '/sys/dev/block/8:0', rate: 5 }] });
  // kernel defaults read back as unset
  assert.deepEqual(parseV1Limits({ 'net_cls.classid': '0', 'net_prio.ifpriomap': 'lo 0', 'blkio.throttle.read_bps_device': '', 'hugetlb.2MB.limit_in_bytes': '9223372036854771712' }), {});
});

const HOST: HostFacts = {
  unavailable: {},
  pageSizes: ['2MB', '1GB'],
  devices: new Map([
    ['/dev/a', { kind: 'block', dev: '7:0', partition: false }],
    ['/dev/b', { kind: 'block', dev: '254:16', partition: false }],
  ]),
  interfaces: ['eth0', 'lo'],
};

test('host check: what fits, and one clear problem for each thing that does not', () => {
  assert.deepEqual(subsystemsOf(FULL), ['hugetlb', 'net_cls', 'net_prio', 'throttle']);
  assert.deepEqual(subsystemsOf({ memoryBytes: 1 }), []);
  assert.deepEqual(limitProblems(FULL, HOST), []);
  const cases: Array<[string, Limits, Partial<HostFacts>, RegExp[]]> = [
    ['page size not offered', { hugetlb: [{ pageSize: '1GB', limitBytes: GB }] }, { pageSizes: ['2MB'] }, [/^--hugetlb-limit 1GB: this host has no 1GB huge pages \(it offers 2MB\)$/]],
    ['no huge pages at all', { hugetlb: [{ pageSize: '2MB', limitBytes: 0 }] }, { pageSizes: [] }, [/offers none/]],
    ['hugetlb controller missing', { hugetlb: [{ pageSize: '2MB', limitBytes: 0 }] }, { unavailable: { hugetlb: { reason: 'R', fix: 'F' } } }, [/^--hugetlb-limit cannot be applied on this host: R$/]],
    ['net_cls on pure v2', { netClsClassid: 1 }, { unavailable: { net_cls: { reason: 'cgroup v2 (the backend in use) has no net_cls controller', fix: 'F' } } }, [/--net-cls-classid cannot be applied on this host: cgroup v2 \(the backend in use\)/]],
    ['net_prio not mounted', { netPrio: [{ iface: 'lo', priority: 1 }] }, { unavailable: { net_prio: { reason: 'not mounted', fix: 'F' } } }, [/--net-prio cannot be applied/]],
    ['interface missing', { netPrio: [{ iface: 'eth9', priority: 1 }] }, {}, [/^--net-prio eth9: this host has no network interface eth9$/]],
    ['throttling missing', { deviceReadIops: [{ path: '/dev/a', rate: 1 }], deviceWriteBps: [{ path: '/dev/a', rate: 1 }] }, { unavailable: { throttle: { reason: 'no blkio', fix: 'F' } } }, [/^--device-write-bps, --device-read-iops cannot be applied on this host: no blkio$/]],
    ['device missing', { deviceReadBps: [{ path: '/dev/gone', rate: 1 }] }, {}, [/^--device-read-bps \/dev\/gone: no such device on this host$/]],
    ['not a block device', { deviceWriteIops: [{ path: '/etc/passwd', rate: 1 }] }, { devices: new Map([['/etc/passwd', { kind: 'other', what: 'a regular file' }]]) }, [/^--device-write-iops \/etc\/passwd: a regular file, not a block device$/]],
    ['a partition', { deviceReadBps: [{ path: '/dev/a1', rate: 1 }] }, { devices: new Map([['/dev/a1', { kind: 'block', dev: '7:1', partition: true }]]) }, [/7:1 is a partition/]],
    ['two paths, one device', { deviceReadBps: [{ path: '/dev/a', rate: 1 }, { path: '/dev/z', rate: 1 }] }, { devices: new Map([['/dev/a', { kind: 'block', dev: '7:0', partition: false }], ['/dev/z', { kind: 'block', dev: '7:0', partition: false }]]) }, [/\/dev\/z: the same device \(7:0\) as \/dev\/a/]],
    ['several at once', { hugetlb: [{ pageSize: '1GB', limitBytes: 0 }], deviceReadBps: [{ path: '/dev/gone', rate: 1 }] }, { pageSizes: [] }, [/1GB huge pages/, /no such device/]],
  ];
  for (const [what, l, facts, want] of cases) {
    const got = limitProblems(l, { ...HOST, ...facts });
    assert.equal(got.length, want.length, `${what}: ${JSON.stringify(got)}`);
    got.forEach((p, i) => {
      assert.match(p.message, want[i]!, what);
      assert.ok(p.fix.length > 0 && !p.message.includes('\n'), what);
    });
  }
  assert.match(limitProblems({ deviceReadBps: [{ path: '/dev/gone', rate: 1 }] }, HOST, 'the peer')[0]!.message, /no such device on the peer/);
  assert.equal(limitProblems({ netClsClassid: 1 }, { ...HOST, unavailable: { net_cls: { reason: 'r', fix: 'f' } } })[0]!.code, 'ECGROUP_MISSING');
});

test('run flags reach the config canonical (sorted, each once); bad ones are refused before anything else', () => {
  const req = parseRunRequest('c1', ['true'], {
    image: 'busybox', hugetlbLimit: ['1GB:1g', '2MB:64m'], netClsClassid: '10:1', netPrio: ['lo=2', 'eth0=5'],
    deviceReadBps: ['/dev/b:2m', '/dev/a:1mb'], deviceWriteBps: ['/dev/a:3m'], deviceReadIops: ['/dev/b:100'], deviceWriteIops: ['/dev/a:200'],
  }, '0-1');
  assert.deepEqual(req.limits, { ...FULL, hugetlb: [{ pageSize: '2MB', limitBytes: 64 * MB }, { pageSize: '1GB', limitBytes: GB }] });
  rejects(() => parseRunRequest('c1', ['true'], { image: 'busybox', netPrio: ['eth0'] }), /--net-prio "eth0": no '='/);
  rejects(() => parseRunRequest('c1', ['true'], { image: 'busybox', deviceWriteIops: ['/dev/a:0'] }), /--device-write-iops/);
  rejects(() => parseRunRequest('c1', ['true'], { image: 'busybox', hugetlbLimit: ['5MB:10m'] }), /huge page size/);
});

test('agent schema: the new limits arrive only well-formed', () => {
  const ok = limitsSchema(JSON.parse(JSON.stringify(FULL)));
  assert.deepEqual(ok, FULL);
  const bad: Array<[string, unknown, RegExp]> = [
    ['page size', { hugetlb: [{ pageSize: '3MB', limitBytes: 0 }] }, /hugetlb\[0\]\.pageSize/],
    ['page size spelled otherwise', { hugetlb: [{ pageSize: '2048KB', limitBytes: 0 }] }, /pageSize/],
    ['not whole pages', { hugetlb: [{ pageSize: '2MB', limitBytes: 3 * MB }] }, /whole number of huge pages/],
    ['page size twice', { hugetlb: [{ pageSize: '2MB', limitBytes: 0 }, { pageSize: '2MB', limitBytes: 2 * MB }] }, /each page size once/],
    ['extra field', { hugetlb: [{ pageSize: '2MB', limitBytes: 0, x: 1 }] }, /unexpected field/],
    ['classid 0', { netClsClassid: 0 }, /below the minimum/],
    ['classid > 32 bits', { netClsClassid: 2 ** 32 }, /above the maximum/],
    ['interface name', { netPrio: [{ iface: '../x', priority: 1 }] }, /iface/],
    ['interface twice', { netPrio: [{ iface: 'lo', priority: 1 }, { iface: 'lo', priority: 2 }] }, /each interface once/],
    ['relative device', { deviceReadBps: [{ path: 'dev/sda', rate: 1 }] }, /path/],
    ['device with a newline', { deviceReadBps: [{ path: '/dev/sda\n8:0 1', rate: 1 }] }, /path/],
    ['zero iops', { deviceWriteIops: [{ path: '/dev/sda', rate: 0 }] }, /below the minimum/],
    ['fractional rate', { deviceWriteBps: [{ path: '/dev/sda', rate: 1.5 }] }, /integer/],
    ['device twice', { deviceReadIops: [{ path: '/dev/sda', rate: 1 }, { path: '/dev/sda', rate: 2 }] }, /each device once/],
    ['unknown limit', { blkioThrottle: 1 }, /unexpected field/],
  ];
  for (const [what, v, re] of bad) {
    assert.throws(() => limitsSchema(v), (e: unknown) => isTsmError(e, 'EPROTO') && re.test(e.message), what);
  }
});
