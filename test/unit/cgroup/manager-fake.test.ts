import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isTsmError, type ErrorCode } from '../../../src/errors/errors.js';
import { createCgroupManager } from '../../../src/cgroup/manager.js';
import type { Layout } from '../../../src/cgroup/detect.js';
import { safeJoin } from '../../../src/cgroup/fsutil.js';
import { freezeV1, defaultFreezerIO, type FreezerIO } from '../../../src/freezer/freezer.js';

const isCode = (code: ErrorCode, re?: RegExp) => (e: unknown) => isTsmError(e, code) && (!re || re.test(e.message));

/** Create dir (recursively) and the given files, like the kernel would show them. */
function fake(dir: string, files: Record<string, string> = {}): string {
  mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(path.join(dir, f), v);
  return dir;
}
const read = (dir: string, f: string) => readFileSync(path.join(dir, f), 'utf8');

function withTmp(fn: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'tsm-cg-'));
    try {
      await fn(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

const V2_LEAF = {
  'cgroup.controllers': 'cpuset cpu io memory pids', 'cgroup.subtree_control': '', 'cgroup.procs': '',
  'cgroup.freeze': '0', 'cgroup.events': 'populated 0\nfrozen 0\n', 'memory.max': 'max', 'memory.low': '0',
  'cpu.max': 'max 100000', 'cpu.weight': '100', 'cpuset.cpus': '', 'cpuset.mems': '', 'pids.max': 'max',
  'io.weight': 'default 100', 'memory.current': '4096', 'pids.current': '2', 'cpu.stat': 'usage_usec 7\nuser_usec 5\n',
  'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n',
};

function v2Layout(root: string): Layout {
  return { kind: 'v2', root, v1: new Map(), v2Mount: root, v2Controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids'] };
}

test('v2: create enables controllers from the root down, apply writes files, readLimits reads them back', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': 'cpuset cpu io memory hugetlb pids', 'cgroup.subtree_control': '' });
  const parent = fake(path.join(root, 'tsmigrate'), {
    'cgroup.controllers': 'cpuset cpu io memory pids', 'cgroup.subtree_control': 'cpu', 'cpuset.mems.effective': '0-1',
  });
  const dir = fake(path.join(parent, 'c1'), V2_LEAF);
  const m = createCgroupManager({ name: 'c1', layout: v2Layout(root) });
  assert.equal(m.kind, 'v2');
  assert.deepEqual(m.paths, { unified: dir });
  assert.equal(m.freezerPath(), dir);
  await m.create();
  assert.equal(read(root, 'cgroup.subtree_control'), '+memory +cpu +cpuset +pids +io +hugetlb');
  assert.equal(read(parent, 'cgroup.subtree_control'), '+memory +cpuset +pids +io'); // cpu already enabled
  // what the kernel then shows; a second create writes nothing
  writeFileSync(path.join(root, 'cgroup.subtree_control'), 'cpuset cpu io memory hugetlb pids\n');
  writeFileSync(path.join(parent, 'cgroup.subtree_control'), 'cpuset cpu io memory pids\n');
  await m.create();
  assert.equal(read(root, 'cgroup.subtree_control'), 'cpuset cpu io memory hugetlb pids\n');
  const limits = { memoryBytes: 64 << 20, memoryReservationBytes: 32 << 20, cpus: 0.5, cpuWeight: 50, cpusetCpus: '1', pidsLimit: 20, ioWeight: 300 };
  await m.apply(limits);
  assert.equal(read(dir, 'memory.max'), String(64 << 20));
  assert.equal(read(dir, 'memory.low'), String(32 << 20));
  assert.equal(read(dir, 'cpu.max'), '50000 100000');
  assert.equal(read(dir, 'cpu.weight'), '50');
  assert.equal(read(dir, 'cpuset.cpus'), '1');
  assert.equal(read(dir, 'cpuset.mems'), '0-1'); // from the parent's cpuset.mems.effective
  assert.equal(read(dir, 'pids.max'), '20');
  assert.equal(read(dir, 'io.weight'), 'default 300');
  assert.deepEqual(await m.readLimits(), limits);
  await m.addProcess(4242);
  assert.equal(read(dir, 'cgroup.procs'), '4242');
  assert.deepEqual(await m.pids(), [4242]);
  assert.deepEqual(await m.stats(), { memoryBytes: 4096, pids: 2, cpuUsageNs: 7000, oomKills: 1 });
  await assert.rejects(m.addProcess(-1), isCode('EINVAL_ARG'));
}));

test('v2: apply refuses a limit whose controller is not enabled', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': 'rdma', 'cgroup.subtree_control': '' });
  fake(path.join(root, 'tsmigrate', 'c1'), { ...V2_LEAF, 'cgroup.controllers': '' });
  const m = createCgroupManager({ name: 'c1', layout: v2Layout(root) });
  await m.create();
  assert.equal(read(root, 'cgroup.subtree_control'), ''); // nothing wanted is available
  await assert.rejects(m.apply({ memoryBytes: 1 << 20 }), isCode('ECGROUP_MISSING', /controller memory is not enabled/));
  await m.apply({}); // nothing to do is fine
}));

test('v2: freeze that never confirms times out and thaws again', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': '', 'cgroup.subtree_control': '' });
  const dir = fake(path.join(root, 'tsmigrate', 'c1'), V2_LEAF);
  const m = createCgroupManager({ name: 'c1', layout: v2Layout(root), freezePollMs: 2 });
  const t0 = Date.now();
  await assert.rejects(m.freeze(60), isCode('EFREEZE_TIMEOUT', /within 60 ms/));
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(read(dir, 'cgroup.freeze'), '0');
  assert.equal(await m.freezerState(), 'thawed');
}));

test('v2: freeze/thaw wait for cgroup.events', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': '', 'cgroup.subtree_control': '' });
  const dir = fake(path.join(root, 'tsmigrate', 'c1'), V2_LEAF);
  // a "kernel" that confirms a few polls after the write
  let polls = 0;
  const io: FreezerIO = {
    ...defaultFreezerIO,
    async read(d, f) {
      if (f === 'cgroup.events' && ++polls === 3) writeFileSync(path.join(d, f), `populated 1\nfrozen ${read(d, 'cgroup.freeze')}\n`);
      return defaultFreezerIO.read(d, f);
    },
    async write(d, f, v) {
      polls = 0;
      return defaultFreezerIO.write(d, f, v);
    },
  };
  const m = createCgroupManager({ name: 'c1', layout: v2Layout(root), freezerIO: io, freezePollMs: 1 });
  await m.freeze(1000);
  assert.equal(await m.freezerState(), 'frozen');
  await m.thaw(1000);
  assert.equal(await m.freezerState(), 'thawed');
  assert.equal(read(dir, 'cgroup.freeze'), '0');
}));

test('v2: killAll uses cgroup.kill; destroy is bounded and idempotent', withTmp(async (root) => {
  fake(root, { 'cgroup.controllers': '', 'cgroup.subtree_control': '' });
  const dir = fake(path.join(root, 'tsmigrate', 'c1'), { ...V2_LEAF, 'cgroup.kill': '' });
  const m = createCgroupManager({ name: 'c1', layout: v2Layout(root), destroyTimeoutMs: 80 });
  await m.killAll();
  assert.equal(read(dir, 'cgroup.kill'), '1');
  // tmpfs dirs with files behave like a busy cgroup: bounded retry, then ECGROUP
  await assert.rejects(m.destroy(), isCode('ECGROUP', /still busy/));
  const e = createCgroupManager({ name: 'empty', layout: v2Layout(root) });
  await e.create();
  assert.equal(await e.exists(), true);
  await e.destroy();
  await e.destroy();
  assert.equal(await e.exists(), false);
  await e.killAll(); // nothing to kill: no-op
}));

// ---- v1 / hybrid --------------------------------------------------------

const V1_CTRLS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'];

const V1_LEAF: Record<string, Record<string, string>> = {
  cpu: { 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '-1', 'cpu.shares': '1024' },
  cpuacct: { 'cpuacct.usage': '123456' },
  cpuset: { 'cpuset.cpus': '', 'cpuset.mems': '' },
  memory: {
    'memory.limit_in_bytes': '9223372036854771712', 'memory.soft_limit_in_bytes': '9223372036854771712',
    'memory.usage_in_bytes': '8192', 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
  },
  freezer: { 'freezer.state': 'THAWED' },
  blkio: { 'blkio.bfq.weight': '100' }, // blk-mq kernel: BFQ's file only, no CFQ blkio.weight
  pids: { 'pids.max': 'max', 'pids.current': '1' },
  unified: { 'cgroup.freeze': '0', 'cgroup.events': 'populated 0\nfrozen 0\n' },
};

/** Hybrid fake like this machine; returns layout. `omit` leaves a controller unmounted. */
function hybridFake(root: string, omit: string[] = []): Layout {
  const v1 = new Map<string, string>();
  for (const c of [...V1_CTRLS, 'unified']) {
    if (omit.includes(c)) continue;
    const mount = path.join(root, c);
    if (c !== 'unified') v1.set(c, mount);
    const rootFiles: Record<string, string> = c === 'cpuset' ? { 'cpuset.cpus': '0-3', 'cpuset.mems': '0' } : {};
    fake(mount, { 'cgroup.procs': '', ...rootFiles });
    for (const d of ['tsmigrate', 'tsmigrate/c1']) fake(path.join(mount, d), { 'cgroup.procs': '', ...(V1_LEAF[c] ?? {}) });
  }
  v1.set('name=systemd', path.join(root, 'systemd'));
  for (const d of ['', 'tsmigrate', 'tsmigrate/c1']) fake(path.join(root, 'systemd', d), { 'cgroup.procs': '' });
  return { kind: 'hybrid', root, v1, v2Mount: path.join(root, 'unified'), v2Controllers: ['hugetlb'] };
}

test('hybrid: v1 backend, v1 freezer, unified dir, every mounted hierarchy (name=systemd too)', withTmp(async (root) => {
  const m = createCgroupManager({ name: 'c1', layout: hybridFake(root) });
  assert.equal(m.kind, 'v1');
  const dirOf = (c: string) => path.join(root, c, 'tsmigrate', 'c1');
  const keys = Object.keys(m.paths).sort();
  for (const k of ['blkio', 'cpu', 'cpuacct', 'cpuset', 'freezer', 'memory', 'pids', 'unified', 'name=systemd']) assert.ok(keys.includes(k), k);
  assert.equal(m.paths['name=systemd'], path.join(root, 'systemd', 'tsmigrate', 'c1'));
  assert.equal(m.paths['unified'], dirOf('unified'));
  assert.equal(m.freezerPath(), dirOf('freezer'));
  await m.create();
  // cpuset.cpus/mems copied from parent at every level
  assert.equal(read(path.join(root, 'cpuset', 'tsmigrate'), 'cpuset.cpus'), '0-3');
  assert.equal(read(dirOf('cpuset'), 'cpuset.cpus'), '0-3');
  assert.equal(read(dirOf('cpuset'), 'cpuset.mems'), '0');
  assert.deepEqual(await m.readLimits(), {}); // inherited cpuset and kernel defaults read as unset

  const limits = { memoryBytes: 32 << 20, memoryReservationBytes: 16 << 20, cpus: 1.5, cpuWeight: 200, cpusetCpus: '1-2', pidsLimit: 20, ioWeight: 10000 };
  await m.apply(limits);
  assert.equal(read(dirOf('memory'), 'memory.limit_in_bytes'), String(32 << 20));
  assert.equal(read(dirOf('memory'), 'memory.soft_limit_in_bytes'), String(16 << 20));
  assert.equal(read(dirOf('cpu'), 'cpu.cfs_quota_us'), '150000');
  assert.equal(read(dirOf('cpu'), 'cpu.cfs_period_us'), '100000');
  assert.equal(read(dirOf('cpu'), 'cpu.shares'), '5219');
  assert.equal(read(dirOf('cpuset'), 'cpuset.cpus'), '1-2');
  assert.equal(read(dirOf('pids'), 'pids.max'), '20');
  assert.equal(read(dirOf('blkio'), 'blkio.bfq.weight'), '1000');
  assert.equal(existsSync(path.join(dirOf('blkio'), 'blkio.weight')), false);
  assert.deepEqual(await m.readLimits(), limits);

  await m.addProcess(777);
  for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory', 'freezer', 'blkio', 'pids', 'unified']) assert.equal(read(dirOf(c), 'cgroup.procs'), '777', c);

  assert.deepEqual(await m.pids(), [777]);
  assert.deepEqual(await m.stats(), { memoryBytes: 8192, pids: 1, cpuUsageNs: 123456, oomKills: 2 });

  await m.freeze();
  assert.equal(read(dirOf('freezer'), 'freezer.state'), 'FROZEN');
  assert.equal(await m.freezerState(), 'frozen');
  await m.thaw();
  assert.equal(await m.freezerState(), 'thawed');
}));

test('v1: freeze stuck in FREEZING times out and thaws again', withTmp(async (root) => {
  const writes: string[] = [];
  let state = 'THAWED';
  const io: FreezerIO = {
    ...defaultFreezerIO,
    async read() { return state; },
    async write(_d, _f, v) { writes.push(v); state = v === 'FROZEN' ? 'FREEZING' : v; },
  };
  const m = createCgroupManager({ name: 'c1', layout: hybridFake(root), freezerIO: io, freezePollMs: 1 });
  await assert.rejects(m.freeze(80), isCode('EFREEZE_TIMEOUT', /FREEZING/));
  assert.equal(writes.at(-1), 'THAWED');
  assert.ok(writes.filter((w) => w === 'FROZEN').length > 3, 'FROZEN is rewritten while FREEZING');
  assert.equal(state, 'THAWED');
  // an unexpected state also thaws
  const io2: FreezerIO = { ...io, async read() { return 'BOGUS'; } };
  writes.length = 0;
  await assert.rejects(freezeV1('/nonexistent', { io: io2, timeoutMs: 50 }), isCode('ECGROUP', /unexpected freezer.state/));
  assert.equal(writes.at(-1), 'THAWED');
}));

test('v1: missing required controller, optional controllers may be absent', withTmp(async (root) => {
  for (const c of ['memory', 'cpu', 'pids', 'freezer']) {
    assert.throws(() => createCgroupManager({ name: 'c1', layout: hybridFake(path.join(root, `no-${c}`), [c]) }),
      isCode('ECGROUP_MISSING', new RegExp(`cgroup controller ${c} is not mounted`)));
  }
  const m = createCgroupManager({ name: 'c1', layout: hybridFake(path.join(root, 'no-blkio'), ['blkio', 'cpuset']) });
  await m.create();
  await assert.rejects(m.apply({ ioWeight: 10 }), isCode('ECGROUP_MISSING', /blkio is not mounted/));
  await assert.rejects(m.apply({ cpusetCpus: '0' }), isCode('ECGROUP_MISSING', /cpuset is not mounted/));
}));

test('factory picks the backend; names and parents cannot escape the root', withTmp(async (root) => {
  const v1only: Layout = { kind: 'v1', root, v1: hybridFake(root).v1, v2Controllers: [] };
  assert.equal(createCgroupManager({ name: 'x', layout: v1only }).paths['unified'], undefined);
  assert.throws(() => createCgroupManager({ name: 'x', layout: v1only, prefer: 'v2' }), isCode('ECGROUP_MISSING', /v2 is not mounted/));
  assert.equal(createCgroupManager({ name: 'x', layout: hybridFake(root), prefer: 'v2' }).kind, 'v2');
  const systemdOnly: Layout = { kind: 'hybrid', root, v1: new Map([['name=systemd', `${root}/systemd`]]), v2Mount: root, v2Controllers: [] };
  assert.equal(createCgroupManager({ name: 'x', layout: systemdOnly }).kind, 'v2');
  assert.throws(() => createCgroupManager({ name: 'x', layout: systemdOnly, prefer: 'v1' }), isCode('ECGROUP_MISSING'));
  const nested = createCgroupManager({ name: 'x', parent: 'a/b', layout: v2Layout(root) });
  assert.equal(nested.paths['unified'], path.join(root, 'a', 'b', 'x'));
  for (const name of ['..', '.', 'a/b', '', 'x\0y', '/etc']) {
    assert.throws(() => createCgroupManager({ name, layout: v2Layout(root) }), isCode('EINVAL_ARG'), JSON.stringify(name));
  }
  for (const parent of ['../etc', '/abs', 'a/../..', 'a//b', 'a\0', '']) {
    assert.throws(() => createCgroupManager({ name: 'x', parent, layout: v2Layout(root) }), isCode('EINVAL_ARG'), JSON.stringify(parent));
  }
}));

test('safeJoin', () => {
  assert.equal(safeJoin('/sys/fs/cgroup', 'tsmigrate', 'c1'), '/sys/fs/cgroup/tsmigrate/c1');
  assert.equal(safeJoin('/sys/fs/cgroup', 'a/b'), '/sys/fs/cgroup/a/b');
  for (const p of ['..', 'a/../../x', '/etc', 'a/./b', 'x\0']) assert.throws(() => safeJoin('/sys/fs/cgroup', p), isCode('EINVAL_ARG'));
  assert.throws(() => safeJoin('relative', 'a'), isCode('EINVAL_ARG'));
});

test('memory events: OOM kills, limit hits and peak usage from each backend, and the file the supervisor watches', withTmp(async (root) => {
  const v2root = path.join(root, 'v2');
  fake(v2root, { 'cgroup.controllers': 'memory', 'cgroup.subtree_control': '' });
  const v2dir = fake(path.join(v2root, 'tsmigrate', 'c1'), { ...V2_LEAF, 'memory.peak': '65536' });
  const m2 = createCgroupManager({ name: 'c1', layout: v2Layout(v2root) });
  assert.deepEqual(await m2.memoryEvents(), { oomKills: 1, limitHits: 3, peakBytes: 65536 });
  assert.equal(m2.oomKillFile(), path.join(v2dir, 'memory.events'));
  rmSync(path.join(v2dir, 'memory.peak')); // kernels before 5.19
  writeFileSync(path.join(v2dir, 'memory.events'), 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n');
  assert.deepEqual(await m2.memoryEvents(), { oomKills: 0, limitHits: 0 });

  const v1 = hybridFake(path.join(root, 'v1'));
  const memDir = path.join(root, 'v1', 'memory', 'tsmigrate', 'c1');
  writeFileSync(path.join(memDir, 'memory.failcnt'), '42');
  writeFileSync(path.join(memDir, 'memory.max_usage_in_bytes'), '33554432');
  const m1 = createCgroupManager({ name: 'c1', layout: v1 });
  assert.deepEqual(await m1.memoryEvents(), { oomKills: 2, limitHits: 42, peakBytes: 33554432 });
  assert.equal(m1.oomKillFile(), path.join(memDir, 'memory.oom_control'));
  // kernels before 4.13 have no oom_kill line in memory.oom_control
  writeFileSync(path.join(memDir, 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\n');
  assert.deepEqual(await m1.memoryEvents(), { limitHits: 42, peakBytes: 33554432 });
}));
