import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { cli, tempRoot } from '../../helpers/cli.js';
import { detectLayout } from '../../../src/cgroup/detect.js';

interface Finding { check: string; ok: boolean; detail: string; disables?: string; fix?: string }

test('doctor reports CRIU, its features, the cgroup layout and the native parts', async () => {
  const r = await cli(tempRoot(), ['--json', 'doctor'], { timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr);
  const f = JSON.parse(r.stdout) as Finding[];
  const by = (c: string) => {
    const x = f.find((y) => y.check === c);
    assert.ok(x, `doctor checks ${c}`);
    return x;
  };
  assert.match(by('criu').detail, /4\.\d+/);
  assert.equal(by('criu check').ok, true);
  assert.equal(by('cgroups').ok, true);
  assert.match(by('cgroups').detail, /layout (v1|v2|hybrid)/);
  // this kernel has blkio without CFQ or BFQ: either way the line is there, and a miss says what it disables
  assert.match(by('cgroup I/O weight').detail, /blkio|io controller/);
  // this kernel attaches and enforces BPF device programs in its cgroup2 mount; the probe cgroup is gone again
  const devices = by('cgroup v2 device filter (BPF)');
  assert.equal(devices.ok, true, devices.detail);
  assert.match(devices.detail, /BPF_CGROUP_DEVICE programs attach in \//);
  assert.deepEqual(readdirSync(detectLayout().v2Mount!).filter((n) => n.startsWith('tsmigrate-doctor-')), []);
  // huge pages, net_cls, net_prio, I/O throttling: asked of this host's backend; setup.sh mounts net_cls,net_prio on v1 hosts
  for (const c of ['cgroup huge page limits', 'cgroup net_cls', 'cgroup net_prio', 'cgroup I/O throttling']) {
    const x = by(c);
    if (!x.ok) assert.match(x.disables ?? '', /^run --/, c);
  }
  const v1 = /v1: \S*memory/.test(by('cgroups').detail);
  if (v1) assert.equal(by('cgroup net_cls').ok, true, by('cgroup net_cls').detail);
  else assert.match(by('cgroup net_cls').detail, /cgroup v2 \(the backend in use\) has no net_cls controller/);
  assert.equal(by('overlayfs').ok, true);
  assert.equal(by('native addon').ok, true);
  assert.equal(by('tsm-shim').ok, true);
  // this kernel has all three; a host without them is told what the default profile loses
  assert.equal(by('seccomp filters').ok, true);
  assert.equal(by('cgroup namespaces').ok, true);
  assert.match(by('user namespaces').detail, /available|disabled/);
  const dirty = by('criu feature mem_dirty_track');
  // whatever the kernel says, a missing feature must say what it disables
  if (!dirty.ok) assert.match(dirty.disables ?? '', /pre-copy/);
  for (const x of f) if (!x.ok) assert.ok(x.disables && x.detail, `${x.check} says what it disables`);
  const text = await cli(tempRoot(), ['doctor'], { timeoutMs: 120000 });
  assert.match(text.stdout, /^ok +criu: /m);
});

test('doctor says how to fix a missing CRIU', async () => {
  const r = await cli(tempRoot(), ['--json', 'doctor'], { env: { TSMIGRATE_CRIU: '/nonexistent/criu' }, timeoutMs: 60000 });
  assert.equal(r.code, 1);
  const f = JSON.parse(r.stdout) as Finding[];
  const c = f.find((x) => x.check === 'criu');
  assert.equal(c?.ok, false);
  assert.match(c?.fix ?? '', /setup\.sh/);
});
