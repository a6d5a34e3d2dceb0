import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { detectLayout, hasV1ResourceControllers, type Layout } from '../cgroup/detect.js';
import { attachDeviceFilter, deviceFilterIds } from '../cgroup/device-filter.js';
import { DEFAULT_DEVICE_RULES } from '../security/devices.js';
import { realHostProbe } from '../cgroup/host.js';
import { createCgroupManager } from '../cgroup/manager.js';
import { criuCheck, locateCriu, probeCapabilities, CRIU_FIX, type CriuSearch } from '../criu/binary.js';
import { nativeAvailable } from '../native/native.js';
import { shimPath } from '../shim/locate.js';
import { securityFindings } from './security.js';
import type { Tools } from '../runtime/tools.js';
import { subsystemFindings } from './subsystems.js';

/** One line of `tsmigrate doctor`: what was found, and when missing, what it disables and how to fix it. */
export interface Finding {
  check: string;
  ok: boolean;
  detail: string;
  disables?: string;
  fix?: string;
}

function which(cmd: string, PATH: string | undefined): string | undefined {
  for (const dir of (PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = `${dir}/${cmd}`;
    if (existsSync(p)) return p;
  }
  return undefined;
}

async function criuFindings(search: CriuSearch): Promise<Finding[]> {
  let bin;
  try {
    bin = await locateCriu(search);
  } catch (e) {
    return [{ check: 'criu', ok: false, detail: (e as Error).message, disables: 'checkpoint, restore, move, schedules', fix: CRIU_FIX }];
  }
  const out: Finding[] = [{ check: 'criu', ok: true, detail: `${bin.path} (${bin.versionText})` }];
  const chk = await criuCheck(bin);
  out.push({
    check: 'criu check',
    ok: chk.ok,
    detail: chk.ok ? 'Looks good' : chk.output.split('\n').filter((l) => /Error/.test(l)).slice(0, 2).join(' | ') || 'failed',
    ...(chk.ok ? {} : { disables: 'checkpoint, restore, move', fix: 'see `criu check` output; run scripts/setup.sh' }),
  });
  const caps = await probeCapabilities(bin);
  out.push({
    check: 'criu feature mem_dirty_track',
    ok: caps.memDirtyTrack,
    detail: caps.memDirtyTrack ? 'soft-dirty tracking available' : 'no soft-dirty tracking in this kernel',
    ...(caps.memDirtyTrack ? {} : { disables: 'memory pre-copy (moves dump all memory while frozen)', fix: 'use a kernel built with CONFIG_MEM_SOFT_DIRTY' }),
  });
  out.push({
    check: 'criu feature lazy_pages (uffd, uffd-noncoop)',
    ok: caps.lazyPages,
    detail: caps.lazyPages ? 'userfaultfd available' : 'userfaultfd not usable',
    ...(caps.lazyPages ? {} : { disables: 'post-copy (lazy pages) migration', fix: 'enable userfaultfd (vm.unprivileged_userfaultfd or CAP_SYS_PTRACE)' }),
  });
  out.push({
    check: 'criu feature timens',
    ok: caps.timens,
    detail: caps.timens ? 'time namespaces: monotonic clocks survive restore' : 'no time namespaces',
    ...(caps.timens ? {} : { disables: 'monotonic clock continuity after restore', fix: 'use Linux 5.6 or newer' }),
  });
  out.push({
    check: 'criu feature tcp_half_closed',
    ok: caps.tcpHalfClosed,
    detail: caps.tcpHalfClosed ? 'half-closed TCP connections can be dumped' : 'half-closed TCP connections cannot be dumped',
    ...(caps.tcpHalfClosed ? {} : { disables: 'moving containers with half-closed TCP connections' }),
  });
  out.push({
    check: 'network lock backend',
    ok: true,
    detail: caps.networkLockNftables ? 'nftables (iptables also available)' : 'iptables',
  });
  const ipt = which('iptables-restore', search.PATH);
  out.push({
    check: 'iptables-restore',
    ok: Boolean(ipt),
    detail: ipt ?? 'missing',
    ...(ipt ? {} : { disables: 'checkpointing network namespaces', fix: 'apt-get install iptables' }),
  });
  return out;
}

async function cgroupFindings(): Promise<Finding[]> {
  try {
    const l = detectLayout();
    const v1 = [...l.v1.keys()].filter((k) => !k.startsWith('name=')).sort();
    const parts = [`layout ${l.kind}`];
    if (v1.length) parts.push(`v1: ${v1.join(',')}`);
    if (l.v2Mount) parts.push(`v2 at ${l.v2Mount}: ${l.v2Controllers.join(',') || '(no controllers)'}`);
    return [{ check: 'cgroups', ok: true, detail: parts.join('; ') }, ioWeightFinding(l), await deviceFilterFinding(l)];
  } catch (e) {
    return [{ check: 'cgroups', ok: false, detail: (e as Error).message, disables: 'everything', fix: 'mount cgroup2 at /sys/fs/cgroup' }];
  }
}

/**
 * Whether `--io-weight` can work: v1 needs blkio.weight (CFQ) or blkio.bfq.weight
 * (BFQ) in a child cgroup (neither file exists in the root), so a probe cgroup is
 * made and removed at once; v2 needs the io controller.
 */
function ioWeightFinding(l: Layout): Finding {
  const check = 'cgroup I/O weight';
  const disables = 'run --io-weight (refused on this host with ECGROUP_MISSING)';
  const blkio = l.v1.get('blkio');
  if (!blkio) {
    const io = l.v2Controllers.includes('io');
    return io ? { check, ok: true, detail: 'v2 io controller' } : { check, ok: false, detail: 'no blkio (v1) or io (v2) controller', disables, fix: 'enable the io cgroup controller' };
  }
  const probe = path.join(blkio, `tsmigrate-doctor-${process.pid}`);
  let found: string | undefined;
  try {
    mkdirSync(probe);
    found = ['blkio.weight', 'blkio.bfq.weight'].find((f) => existsSync(path.join(probe, f)));
  } catch (e) {
    return { check, ok: false, detail: `cannot probe ${blkio}: ${(e as Error).message}`, disables, fix: 'run as root' };
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      /* never made */
    }
  }
  return found
    ? { check, ok: true, detail: `v1 ${found}` }
    : { check, ok: false, detail: 'v1 blkio has neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ)', disables, fix: 'use a kernel with CONFIG_BFQ_GROUP_IOSCHED' };
}

/**
 * Whether the cgroup v2 devices allow-list (a BPF device program) works: the
 * default rules are attached to a probe cgroup made and removed at once.
 */
async function deviceFilterFinding(l: Layout): Promise<Finding> {
  const check = 'cgroup v2 device filter (BPF)';
  const usedHere = !hasV1ResourceControllers(l); // the factory's choice of backend
  if (l.v2Mount === undefined) return { check, ok: true, detail: 'not needed: no cgroup2 mount (the v1 devices controller restricts devices)' };
  const probe = path.join(l.v2Mount, `tsmigrate-doctor-devices-${process.pid}`);
  try {
    mkdirSync(probe);
    await attachDeviceFilter(probe, DEFAULT_DEVICE_RULES);
    const n = deviceFilterIds(probe).length;
    if (n !== 1) throw new Error(`${n} device programs attached to the probe cgroup instead of 1`);
    return { check, ok: true, detail: `BPF_CGROUP_DEVICE programs attach in ${l.v2Mount}${usedHere ? '' : ' (unused here: this host restricts devices with the v1 devices controller)'}` };
  } catch (e) {
    return {
      check, ok: false, detail: (e as Error).message,
      disables: usedHere ? 'the devices allow-list: containers start only with --privileged' : 'the devices allow-list on cgroup v2 hosts (this host uses the v1 devices controller instead)',
      fix: (e as { fix?: string }).fix ?? 'run as root on a kernel with CONFIG_CGROUP_BPF',
    };
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      /* never made */
    }
  }
}

export async function runDoctor(tools: Tools): Promise<Finding[]> {
  const f: Finding[] = [];
  const root = process.getuid?.() === 0;
  f.push({ check: 'root', ok: root, detail: root ? 'running as root' : 'not root', ...(root ? {} : { disables: 'everything', fix: 'run as root' }) });
  f.push(...(await criuFindings(tools.criu)));
  f.push(...(await cgroupFindings()));
  f.push(...securityFindings());
  try {
    f.push(...(await subsystemFindings(createCgroupManager({ name: 'doctor' }), realHostProbe())));
  } catch {
    /* no usable cgroups: the cgroups line already says so */
  }
  const fs = readFileSync('/proc/filesystems', 'utf8');
  const ovl = /\toverlay$/m.test(fs);
  f.push({ check: 'overlayfs', ok: ovl, detail: ovl ? 'available' : 'not in /proc/filesystems', ...(ovl ? {} : { disables: 'containers', fix: 'modprobe overlay' }) });
  const addon = nativeAvailable();
  f.push({ check: 'native addon', ok: addon, detail: addon ? 'loaded' : 'not built', ...(addon ? {} : { disables: 'containers', fix: 'npm run build:native' }) });
  let shim: string | undefined;
  try {
    shim = shimPath(tools.shim);
  } catch {
    shim = undefined;
  }
  f.push({ check: 'tsm-shim', ok: Boolean(shim), detail: shim ?? 'not built', ...(shim ? {} : { disables: 'containers', fix: 'npm run build:native' }) });
  const streamer = existsSync(tools.streamer) ? tools.streamer : undefined;
  f.push({
    check: 'tsm-streamer', ok: Boolean(streamer), detail: streamer ?? 'not built',
    ...(streamer ? {} : { disables: "CRIU's image streamer in moves (used by default for containers up to 512 MiB; without it their images go through tmpfs)", fix: 'npm run build:native' }),
  });
  for (const [cmd, pkg, dis] of [
    ['ip', 'iproute2', 'container networking'],
    ['nsenter', 'util-linux', 'container networking'],
    ['sshd', 'openssh-server', 'local test peers (moves between hosts on one machine)'],
  ] as const) {
    const p = which(cmd, tools.criu.PATH);
    f.push({ check: cmd, ok: Boolean(p), detail: p ?? 'missing', ...(p ? {} : { disables: dis, fix: `apt-get install ${pkg}` }) });
  }
  return f;
}
