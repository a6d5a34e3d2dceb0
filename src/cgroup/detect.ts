/**
 * Detect the cgroup layout (pure v1, hybrid, pure v2) from /proc/self/mountinfo.
 * Both the root and the mountinfo text are parameters so tests can point
 * detection at a temp directory with a fake mountinfo.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

export interface Layout {
  kind: 'v1' | 'v2' | 'hybrid';
  /** The cgroup root detection was run against (e.g. /sys/fs/cgroup). */
  root: string;
  /** v1 controller (or "name=systemd") -> mountpoint; co-mounted controllers share one. */
  v1: Map<string, string>;
  /** Mountpoint of cgroup2 under root, if any (root itself on pure v2). */
  v2Mount?: string;
  /** Controllers listed in <v2Mount>/cgroup.controllers. */
  v2Controllers: string[];
}

export interface MountEntry {
  mountPoint: string;
  /** Root of the mount within its filesystem (field 4). */
  fsRoot: string;
  fsType: string;
  source: string;
  superOptions: string[];
}

/** Known v1 controller names (the kernel's subsystem names). */
export const V1_CONTROLLERS = new Set([
  'cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'net_cls', 'net_prio',
  'blkio', 'perf_event', 'hugetlb', 'pids', 'rdma', 'misc', 'debug',
]);

/** Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parse mountinfo lines:
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 * (id parent maj:min root mountpoint options [optional fields...] - fstype source superoptions)
 * Malformed lines are skipped.
 */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(' ');
    const post = line.slice(sep + 3).split(' ');
    if (pre.length < 6 || post.length < 2) continue;
    out.push({
      fsRoot: unescapeMountPath(pre[3]!),
      mountPoint: unescapeMountPath(pre[4]!),
      fsType: post[0]!,
      source: unescapeMountPath(post[1]!),
      superOptions: (post[2] ?? '').split(',').filter(Boolean),
    });
  }
  return out;
}

/** Controllers named in a v1 mount's super options: "rw,cpu,cpuacct" -> [cpu, cpuacct]; "rw,name=systemd" -> [name=systemd]. */
export function v1ControllersOf(superOptions: string[]): string[] {
  return superOptions.filter((o) => V1_CONTROLLERS.has(o) || /^name=[^,]+$/.test(o));
}

function under(root: string, p: string): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : root + '/');
}

function readOpt(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Detect the layout under `cgroupRoot`. Only mounts at or below the root count.
 * v2 controllers are read from <v2Mount>/cgroup.controllers (empty if unreadable).
 */
export function detectLayout(cgroupRoot = '/sys/fs/cgroup', mountinfoText?: string): Layout {
  const root = path.resolve(cgroupRoot);
  const text = mountinfoText ?? readOpt('/proc/self/mountinfo');
  if (text === undefined) {
    throw new TsmError('ECGROUP_MISSING', 'cannot read /proc/self/mountinfo to find cgroup mounts', {
      fix: 'mount /proc (mount -t proc proc /proc)',
    });
  }
  const v1 = new Map<string, string>();
  let v2Mount: string | undefined;
  for (const m of parseMountinfo(text)) {
    const mp = path.resolve(m.mountPoint);
    if (!under(root, mp)) continue;
    if (m.fsType === 'cgroup2') {
      // Prefer a cgroup2 at the root itself over one at a subdirectory.
      if (v2Mount === undefined || mp === root) v2Mount = mp;
    } else if (m.fsType === 'cgroup') {
      for (const c of v1ControllersOf(m.superOptions)) {
        if (!v1.has(c)) v1.set(c, mp); // first mount of a hierarchy wins (ignore bind mounts)
      }
    }
  }
  if (v1.size === 0 && v2Mount === undefined) {
    throw new TsmError('ECGROUP_MISSING', `no cgroup filesystem is mounted under ${root}`, {
      fix: `mount cgroup2 (mount -t cgroup2 cgroup2 ${root}) or the v1 controllers`,
    });
  }
  const v2Controllers = v2Mount === undefined
    ? []
    : (readOpt(path.join(v2Mount, 'cgroup.controllers')) ?? '').split(/\s+/).filter(Boolean);
  // Only named v1 hierarchies (e.g. name=systemd) next to cgroup2 still counts as hybrid:
  // the systemd "legacy" layout has just name=systemd in v1 and everything in v2.
  const kind: Layout['kind'] = v1.size === 0 ? 'v2' : v2Mount === undefined ? 'v1' : 'hybrid';
  const layout: Layout = { kind, root, v1, v2Controllers };
  if (v2Mount !== undefined) layout.v2Mount = v2Mount;
  return layout;
}

/** True if v1 has at least one real (non name=) controller. */
export function hasV1ResourceControllers(layout: Layout): boolean {
  return [...layout.v1.keys()].some((c) => !c.startsWith('name='));
}
