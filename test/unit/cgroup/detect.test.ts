import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { detectLayout, parseMountinfo, v1ControllersOf, unescapeMountPath } from '../../../src/cgroup/detect.js';

const PRE = '22 1 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n' +
  '26 22 0:24 / /sys/fs/pstore rw,relatime - pstore pstore rw\n';

/** Mountinfo like this machine (hybrid), rooted at `root`. */
function hybrid(root: string): string {
  const v1 = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'];
  return PRE + `30 22 0:27 / ${root} rw,relatime - tmpfs tmpfs rw,mode=755\n` +
    v1.map((c, i) => `${31 + i} 30 0:${28 + i} / ${root}/${c} rw,relatime - cgroup cgroup rw,${c}\n`).join('') +
    `39 30 0:36 / ${root}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n` +
    `40 30 0:37 / ${root}/unified rw,relatime - cgroup2 cgroup2 rw\n`;
}

/** Classic pure v1 (Debian 9 / CentOS 7 style) with co-mounted cpu,cpuacct and optional fields. */
function pureV1(root: string): string {
  return PRE + `25 22 0:23 / ${root} ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n` +
    `27 25 0:25 / ${root}/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n` +
    `29 25 0:27 / ${root}/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct\n` +
    `30 25 0:28 / ${root}/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n` +
    `31 25 0:29 / ${root}/freezer rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,freezer\n` +
    `32 25 0:30 / ${root}/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids\n` +
    `33 25 0:31 / ${root}/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,net_cls,net_prio\n` +
    `34 25 0:32 / ${root}/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children\n`;
}

function pureV2(root: string): string {
  return PRE + `35 22 0:30 / ${root} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n`;
}

function tmpRoot(): string {
  return mkdtempSync(path.join(tmpdir(), 'tsm-detect-'));
}

test('parseMountinfo handles optional fields and escapes', () => {
  const [m] = parseMountinfo('40 30 0:37 / /a\\040b rw,relatime shared:1 master:2 - cgroup2 cgroup2 rw,nsdelegate\n');
  assert.ok(m);
  assert.equal(m.mountPoint, '/a b');
  assert.equal(m.fsType, 'cgroup2');
  assert.deepEqual(m.superOptions, ['rw', 'nsdelegate']);
  assert.equal(unescapeMountPath('x\\011y\\134z'), 'x\ty\\z');
  assert.deepEqual(parseMountinfo('garbage line\n\n'), []);
});

test('v1ControllersOf filters mount options', () => {
  assert.deepEqual(v1ControllersOf(['rw', 'cpu', 'cpuacct']), ['cpu', 'cpuacct']);
  assert.deepEqual(v1ControllersOf(['rw', 'xattr', 'release_agent=/x', 'name=systemd']), ['name=systemd']);
  assert.deepEqual(v1ControllersOf(['rw', 'cpuset', 'clone_children', 'noprefix']), ['cpuset']);
});

test('hybrid layout (like this machine)', () => {
  const root = tmpRoot();
  try {
    mkdirSync(path.join(root, 'unified'));
    writeFileSync(path.join(root, 'unified', 'cgroup.controllers'), 'hugetlb\n');
    const l = detectLayout(root, hybrid(root));
    assert.equal(l.kind, 'hybrid');
    assert.equal(l.root, root);
    assert.equal(l.v2Mount, path.join(root, 'unified'));
    assert.deepEqual(l.v2Controllers, ['hugetlb']);
    assert.equal(l.v1.get('memory'), path.join(root, 'memory'));
    assert.equal(l.v1.get('cpuacct'), path.join(root, 'cpuacct'));
    assert.equal(l.v1.get('name=systemd'), path.join(root, 'systemd'));
    assert.equal(l.v1.size, 9);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('pure v1 layout with co-mounted controllers', () => {
  const root = tmpRoot();
  try {
    const l = detectLayout(root, pureV1(root));
    assert.equal(l.kind, 'v1');
    assert.equal(l.v2Mount, undefined);
    assert.deepEqual(l.v2Controllers, []);
    assert.equal(l.v1.get('cpu'), path.join(root, 'cpu,cpuacct'));
    assert.equal(l.v1.get('cpuacct'), path.join(root, 'cpu,cpuacct'));
    assert.equal(l.v1.get('net_prio'), path.join(root, 'net_cls,net_prio'));
    assert.equal(l.v1.get('cpuset'), path.join(root, 'cpuset'));
    assert.equal(l.v1.has('blkio'), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('pure v2 layout reads cgroup.controllers', () => {
  const root = tmpRoot();
  try {
    writeFileSync(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
    const l = detectLayout(root, pureV2(root));
    assert.equal(l.kind, 'v2');
    assert.equal(l.v2Mount, root);
    assert.equal(l.v1.size, 0);
    assert.deepEqual(l.v2Controllers, ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('only mounts under the given root count', () => {
  const root = tmpRoot();
  try {
    // this machine's mounts are at /sys/fs/cgroup, not under the temp root
    assert.throws(() => detectLayout(root, hybrid('/sys/fs/cgroup')), (e: unknown) => isTsmError(e, 'ECGROUP_MISSING'));
    // a sibling with the root as a string prefix does not count either
    assert.throws(() => detectLayout(root, pureV2(root + 'x')), (e: unknown) => isTsmError(e, 'ECGROUP_MISSING'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cgroup2 at the root plus name=systemd v1 is hybrid without v1 resource controllers', () => {
  const root = tmpRoot();
  try {
    const text = pureV2(root) + `50 35 0:40 / ${root}/systemd rw - cgroup cgroup rw,name=systemd\n`;
    const l = detectLayout(root, text);
    assert.equal(l.kind, 'hybrid');
    assert.equal(l.v2Mount, root);
    assert.deepEqual([...l.v1.keys()], ['name=systemd']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the real machine is detected (smoke)', () => {
  const l = detectLayout();
  assert.ok(['v1', 'v2', 'hybrid'].includes(l.kind));
});
