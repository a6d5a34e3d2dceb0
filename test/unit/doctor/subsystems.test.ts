import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subsystemFindings } from '../../../src/doctor/subsystems.js';
import type { HostProbe } from '../../../src/cgroup/host.js';
import type { Limits } from '../../../src/cgroup/limits.js';
import type { LimitProblem } from '../../../src/cgroup/support.js';

const probe = (sizes: string[]): HostProbe => ({ hugepageSizes: async () => sizes, device: async () => ({ kind: 'missing' }), interfaces: async () => ['lo'] });

test('doctor: each optional cgroup subsystem is one line; a miss gives the reason, what it disables and the fix', async () => {
  const asked: Limits[] = [];
  const cg = {
    kind: 'v2' as const,
    async check(l: Limits): Promise<LimitProblem[]> {
      asked.push(l);
      const out: LimitProblem[] = [];
      if (l.netClsClassid !== undefined) out.push({ code: 'ECGROUP_MISSING', check: 'cgroups', message: '--net-cls-classid cannot be applied on this host: cgroup v2 (the backend in use) has no net_cls controller', fix: 'F1' });
      // the throttle probe's sample path is no device: that problem is not the doctor's
      if (l.deviceReadBps) out.push({ code: 'EINVAL_ARG', check: 'devices', message: '--device-read-bps /: a directory, not a block device', fix: 'F2' });
      return out;
    },
  };
  const f = await subsystemFindings(cg, probe(['2MB', '1GB']));
  assert.deepEqual(f.map((x) => [x.check, x.ok]), [
    ['cgroup huge page limits', true], ['cgroup net_cls', false], ['cgroup net_prio', true], ['cgroup I/O throttling', true],
  ]);
  assert.deepEqual(f[1], { check: 'cgroup net_cls', ok: false, detail: 'cgroup v2 (the backend in use) has no net_cls controller', disables: 'run --net-cls-classid', fix: 'F1' });
  assert.equal(f[0]!.detail, 'hugetlb controller; page sizes 2MB, 1GB');
  assert.equal(f[3]!.detail, 'io.max (v2 io controller)');
  assert.deepEqual(asked[0], { hugetlb: [{ pageSize: '2MB', limitBytes: 0 }] }, 'huge pages are asked with a size the host offers');
});
