/**
 * doctor's lines for the optional cgroup subsystems: huge page limits, net_cls,
 * net_prio and block I/O throttling, each asked of the cgroup backend this host
 * uses (the same check `run` makes), saying what a miss disables.
 */
import type { HostProbe } from '../cgroup/host.js';
import type { Limits } from '../cgroup/limits.js';
import type { CgroupManager } from '../cgroup/manager.js';
import type { Finding } from './doctor.js';

interface Probe {
  check: string;
  disables: string;
  /** a limit that needs only this subsystem */
  sample: Limits;
  detail: string;
}

export async function subsystemFindings(cg: Pick<CgroupManager, 'check' | 'kind'>, probe: HostProbe): Promise<Finding[]> {
  const sizes = await probe.hugepageSizes();
  const probes: Probe[] = [
    {
      check: 'cgroup huge page limits', disables: 'run --hugetlb-limit',
      sample: { hugetlb: [{ pageSize: sizes[0] ?? '2MB', limitBytes: 0 }] },
      detail: `hugetlb controller; page sizes ${sizes.join(', ')}`,
    },
    { check: 'cgroup net_cls', disables: 'run --net-cls-classid', sample: { netClsClassid: 1 }, detail: 'net_cls controller (v1)' },
    { check: 'cgroup net_prio', disables: 'run --net-prio', sample: { netPrio: [{ iface: 'lo', priority: 1 }] }, detail: 'net_prio controller (v1)' },
    {
      check: 'cgroup I/O throttling', disables: 'run --device-read-bps, --device-write-bps, --device-read-iops, --device-write-iops',
      // only the controller is asked about here: "/" is no device, and that problem is not reported
      sample: { deviceReadBps: [{ path: '/', rate: 1 }] },
      detail: cg.kind === 'v2' ? 'io.max (v2 io controller)' : 'blkio.throttle.* (v1 blkio controller)',
    },
  ];
  const out: Finding[] = [];
  for (const p of probes) {
    const miss = (await cg.check(p.sample)).find((x) => x.check !== 'devices');
    out.push(miss
      ? { check: p.check, ok: false, detail: miss.message.replace(/^.*? cannot be applied on this host: /, ''), disables: p.disables, fix: miss.fix }
      : { check: p.check, ok: true, detail: p.detail });
  }
  return out;
}
