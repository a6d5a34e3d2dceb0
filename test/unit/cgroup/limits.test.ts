import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTsmError } from '../../../src/errors/errors.js';
import {
  parseSize, parseCpus, parseCpuset, parseWeight, parsePidsLimit, expandCpuList, formatCpuList,
  v1Files, v2Files, parseV1Limits, parseV2Limits, weightToShares, sharesToWeight, ioWeightToBlkio,
  blkioToIoWeight, type Limits,
} from '../../../src/cgroup/limits.js';

const rejects = (fn: () => unknown, re?: RegExp) =>
  assert.throws(fn, (e: unknown) => isTsmError(e, 'EINVAL_ARG') && (!re || re.test(e.message)) && !!e.fix);

test('parseSize accepts units, case-insensitive, binary', () => {
  const ok: Array<[string, number]> = [
    ['1048576', 1048576], ['512m', 512 * 2 ** 20], ['1g', 2 ** 30], ['64k', 65536], ['64K', 65536],
    ['1G', 2 ** 30], ['2t', 2 * 2 ** 40], ['100b', 100], ['1.5g', 1.5 * 2 ** 30], ['32MiB', 32 * 2 ** 20],
    ['32mb', 32 * 2 ** 20], [' 8m ', 8 * 2 ** 20],
  ];
  for (const [s, n] of ok) assert.equal(parseSize(s), n, s);
});

test('parseSize rejects garbage, zero, negatives, overflow', () => {
  for (const s of ['', '0', '0m', '-1', '-5m', 'abc', '12x', 'm', '1.2.3', '1e6', '9007199254740993', '9000000t']) {
    rejects(() => parseSize(s), /size/);
  }
});

test('parseCpus', () => {
  assert.equal(parseCpus('1.5'), 1.5);
  assert.equal(parseCpus('0.25'), 0.25);
  assert.equal(parseCpus('2'), 2);
  assert.equal(parseCpus('1024'), 1024);
  assert.equal(parseCpus('0.125'), 0.125);
  for (const s of ['0', '0.0', '-1', '1.2345', '1025', 'x', '', '0.001', '1,5', '.5']) rejects(() => parseCpus(s), /CPU/);
});

test('parseCpuset validates syntax and online CPUs', () => {
  assert.equal(parseCpuset('0-1,3', '0-3'), '0-1,3');
  assert.equal(parseCpuset('0', '0-1'), '0');
  assert.equal(parseCpuset('3,0-1', [0, 1, 2, 3]), '0-1,3');
  assert.equal(parseCpuset('0-2,1', '0-3'), '0-2');
  rejects(() => parseCpuset('1-0', '0-3'), /reversed/);
  rejects(() => parseCpuset('a', '0-3'), /invalid CPU list/);
  rejects(() => parseCpuset('', '0-3'));
  rejects(() => parseCpuset('0,,1', '0-3'));
  rejects(() => parseCpuset('0-1,4', '0-3'), /CPU 4 .*not online/);
  rejects(() => parseCpuset('2', '0-1'), /online: 0-1/);
});

test('expandCpuList / formatCpuList', () => {
  assert.deepEqual(expandCpuList('0-2,5,7-8'), [0, 1, 2, 5, 7, 8]);
  assert.equal(formatCpuList([8, 7, 5, 2, 1, 0]), '0-2,5,7-8');
  assert.equal(formatCpuList([]), '');
});

test('parseWeight and parsePidsLimit', () => {
  assert.equal(parseWeight('1'), 1);
  assert.equal(parseWeight(10000), 10000);
  for (const s of ['0', '10001', '-1', '1.5', 'x', '']) rejects(() => parseWeight(s), /weight/);
  rejects(() => parseWeight('0', 'cpu weight'), /cpu weight/);
  assert.equal(parsePidsLimit('20'), 20);
  assert.equal(parsePidsLimit('max'), -1);
  assert.equal(parsePidsLimit(-1), -1);
  for (const s of ['0', '-2', 'x', '1.5', '99999999']) rejects(() => parsePidsLimit(s), /pids limit/);
});

test('weight <-> shares conversion (runc/crun formula)', () => {
  assert.equal(weightToShares(1), 2);
  assert.equal(weightToShares(100), 2597);
  assert.equal(weightToShares(10000), 262144);
  for (const w of [1, 2, 50, 100, 999, 5000, 9999, 10000]) assert.equal(sharesToWeight(weightToShares(w)), w, `w=${w}`);
  assert.equal(ioWeightToBlkio(1), 10);
  assert.equal(ioWeightToBlkio(10000), 1000);
  assert.equal(blkioToIoWeight(10), 1);
  assert.equal(blkioToIoWeight(1000), 10000);
});

const full: Limits = {
  memoryBytes: 512 * 2 ** 20, memoryReservationBytes: 256 * 2 ** 20, cpus: 1.5, cpuWeight: 200,
  cpusetCpus: '0-1', pidsLimit: 20, ioWeight: 10000,
};

test('v2Files maps every limit', () => {
  assert.deepEqual(v2Files(full), [
    { file: 'memory.max', value: '536870912' },
    { file: 'memory.low', value: '268435456' },
    { file: 'cpu.max', value: '150000 100000' },
    { file: 'cpu.weight', value: '200' },
    { file: 'cpuset.cpus', value: '0-1' },
    { file: 'cpuset.mems', value: '0' },
    { file: 'pids.max', value: '20' },
    { file: 'io.weight', value: 'default 10000' },
  ]);
  assert.deepEqual(v2Files({}), []);
  assert.deepEqual(v2Files({ pidsLimit: -1 }), [{ file: 'pids.max', value: 'max' }]);
  assert.deepEqual(v2Files({ cpusetCpus: '1' }, { mems: '0-1' })[1], { file: 'cpuset.mems', value: '0-1' });
  assert.deepEqual(v2Files({ cpus: 0.01 }), [{ file: 'cpu.max', value: '1000 100000' }]);
});

test('v1Files maps every limit', () => {
  assert.deepEqual(v1Files(full, { mems: '0' }), [
    { controller: 'memory', file: 'memory.limit_in_bytes', value: '536870912' },
    { controller: 'memory', file: 'memory.soft_limit_in_bytes', value: '268435456' },
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: '100000' },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: '150000' },
    { controller: 'cpu', file: 'cpu.shares', value: String(weightToShares(200)) },
    { controller: 'cpuset', file: 'cpuset.cpus', value: '0-1' },
    { controller: 'cpuset', file: 'cpuset.mems', value: '0' },
    { controller: 'pids', file: 'pids.max', value: '20' },
    { controller: 'blkio', file: 'blkio.weight', value: '1000' },
  ]);
  assert.deepEqual(v1Files({}), []);
});

test('readback v2: defaults read as unset, values round-trip', () => {
  const defaults = {
    'memory.max': 'max', 'memory.low': '0', 'cpu.max': 'max 100000', 'cpu.weight': '100',
    'cpuset.cpus': '', 'pids.max': 'max', 'io.weight': 'default 100',
  };
  assert.deepEqual(parseV2Limits(defaults), {});
  assert.deepEqual(parseV2Limits({}), {});
  const files = Object.fromEntries(v2Files(full).map((f) => [f.file, f.value]));
  assert.deepEqual(parseV2Limits(files), full);
});

test('readback v1: kernel "unlimited" values read as unset, values round-trip', () => {
  const defaults = {
    'memory.limit_in_bytes': '9223372036854771712', 'memory.soft_limit_in_bytes': '9223372036854771712',
    'cpu.cfs_quota_us': '-1', 'cpu.cfs_period_us': '100000', 'cpu.shares': '1024',
    'cpuset.cpus': '0-1', 'pids.max': 'max', 'blkio.bfq.weight': '100',
  };
  assert.deepEqual(parseV1Limits(defaults, { parentCpus: '0-1' }), {});
  assert.deepEqual(parseV1Limits(defaults), { cpusetCpus: '0-1' });
  const files = Object.fromEntries(v1Files(full).map((f) => [f.file, f.value]));
  assert.deepEqual(parseV1Limits(files, { parentCpus: '0-3' }), full);
  // bfq fallback file is read when CFQ's blkio.weight is absent
  assert.deepEqual(parseV1Limits({ 'blkio.bfq.weight': '1000' }), { ioWeight: 10000 });
});
