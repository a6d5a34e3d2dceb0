/**
 * The host facts some limits depend on, read from the running kernel: the huge
 * page sizes it offers, what a device path is here (stat -> MAJOR:MINOR), and
 * its network interfaces. Managers take a HostProbe so fake-filesystem tests can
 * answer for a host they do not run on.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pageSizeFromSysfs, parsePageSize } from './hugetlb.js';
import type { Limits } from './limits.js';
import { subsystemsOf, type HostFacts } from './support.js';
import { throttledPaths } from './throttle.js';

export type DeviceFact =
  | { kind: 'block'; dev: string; partition: boolean }
  | { kind: 'missing' }
  /** exists but is no block device: "a regular file", "a character device", ... */
  | { kind: 'other'; what: string };

export interface HostProbe {
  /** The kernel's names of the huge page sizes this host offers, smallest first ("2MB", "1GB"). */
  hugepageSizes(): Promise<string[]>;
  /** What `path` (followed through symlinks) is on this host. */
  device(path: string): Promise<DeviceFact>;
  /** Network interfaces of this process's network namespace (the host's, where tsmigrate runs). */
  interfaces(): Promise<string[]>;
}

export interface HostProbeDirs {
  hugepages?: string;
  sysDevBlock?: string;
  sysClassNet?: string;
}

/** glibc's gnu_dev_major/gnu_dev_minor on a 64-bit dev_t. */
export function splitDev(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function kindOf(st: import('node:fs').BigIntStats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a device';
}

const exists = (p: string): Promise<boolean> => fs.access(p).then(() => true, () => false);

export function realHostProbe(dirs: HostProbeDirs = {}): HostProbe {
  const hugepages = dirs.hugepages ?? '/sys/kernel/mm/hugepages';
  const sysDevBlock = dirs.sysDevBlock ?? '/sys/dev/block';
  const sysClassNet = dirs.sysClassNet ?? '/sys/class/net';
  return {
    async hugepageSizes() {
      const entries = await fs.readdir(hugepages).catch(() => [] as string[]);
      const names = entries.map(pageSizeFromSysfs).filter((n): n is string => n !== undefined);
      return names.sort((a, b) => parsePageSize(a) - parsePageSize(b));
    },
    async device(p) {
      let st: import('node:fs').BigIntStats;
      try {
        st = await fs.stat(p, { bigint: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
        return { kind: 'other', what: `not readable (${code ?? 'error'})` };
      }
      if (!st.isBlockDevice()) return { kind: 'other', what: kindOf(st) };
      const dev = splitDev(st.rdev);
      if (!(await exists(path.join(sysDevBlock, dev)))) return { kind: 'other', what: `a node for block device ${dev}, which the kernel does not have` };
      return { kind: 'block', dev, partition: await exists(path.join(sysDevBlock, dev, 'partition')) };
    },
    async interfaces() {
      return (await fs.readdir(sysClassNet).catch(() => [] as string[])).sort();
    },
  };
}

/** The facts `l` depends on, probed only for the subsystems it uses. */
export async function gatherFacts(l: Limits, probe: HostProbe, unavailable: HostFacts['unavailable']): Promise<HostFacts> {
  const uses = subsystemsOf(l);
  const devices = new Map<string, DeviceFact>();
  if (uses.includes('throttle')) for (const p of throttledPaths(l)) devices.set(p, await probe.device(p));
  return {
    unavailable,
    pageSizes: uses.includes('hugetlb') ? await probe.hugepageSizes() : [],
    devices,
    interfaces: uses.includes('net_prio') ? await probe.interfaces() : [],
  };
}
