/**
 * The devices a container may use: the standard nodes (runc's and Podman's
 * default allow-list) plus what --device adds. Rules are data here; the cgroup
 * backends turn them into v1 devices.allow lines or a v2 BPF device program.
 */
import { TsmError } from '../errors/errors.js';

export interface DeviceRule {
  /** 'a' all, 'c' char, 'b' block */
  readonly type: 'a' | 'c' | 'b';
  /** null: any */
  readonly major: number | null;
  readonly minor: number | null;
  /** a non-empty subset of "rwm" */
  readonly access: string;
}

/** A node --device makes inside the container's /dev. */
export interface DeviceNode {
  readonly path: string;
  /** where it is on the host that ran the container first (a user namespace binds it, as it cannot mknod) */
  readonly hostPath: string;
  readonly type: 'c' | 'b';
  readonly major: number;
  readonly minor: number;
  readonly mode: number;
}

/** mknod of any node stays allowed (CAP_MKNOD still decides); read and write only the standard nodes. */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { type: 'c', major: null, minor: null, access: 'm' },
  { type: 'b', major: null, minor: null, access: 'm' },
  { type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { type: 'c', major: 136, minor: null, access: 'rwm' }, // pts/*
];

export const ALLOW_ALL_DEVICES: readonly DeviceRule[] = [{ type: 'a', major: null, minor: null, access: 'rwm' }];

/** "c 1:3 rwm", as devices.allow takes it. */
export function deviceRuleLine(r: DeviceRule): string {
  const n = (x: number | null) => (x === null ? '*' : String(x));
  return `${r.type} ${n(r.major)}:${n(r.minor)} ${r.access}`;
}

export interface DeviceRequest {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly access: string;
}

/** Pure: --device HOST[:CONTAINER][:PERMS] (Podman's syntax). */
export function parseDeviceFlag(raw: string): DeviceRequest {
  const fix = 'use --device /dev/HOSTDEV[:/dev/CONTAINERDEV][:rwm], e.g. --device /dev/fuse or --device /dev/sdb:/dev/xvdb:r';
  const parts = raw.split(':');
  const isPerms = (s: string | undefined) => s !== undefined && /^[rwm]{1,3}$/.test(s) && new Set(s).size === s.length;
  let access = 'rwm';
  if (parts.length > 1 && isPerms(parts[parts.length - 1])) access = parts.pop()!;
  if (parts.length > 2 || parts.some((p) => p === '')) throw new TsmError('EINVAL_ARG', `--device ${JSON.stringify(raw)} is not HOST[:CONTAINER][:PERMS]`, { fix });
  const [host, container = host] = parts as [string, string?];
  for (const p of [host, container]) {
    if (!p.startsWith('/') || p.split('/').includes('..') || p.includes('\0') || p.includes('=')) {
      throw new TsmError('EINVAL_ARG', `--device ${JSON.stringify(raw)}: ${JSON.stringify(p)} is not an absolute path without '..' or '='`, { fix });
    }
  }
  if (!container.startsWith('/dev/') || container.length <= 5) {
    throw new TsmError('EINVAL_ARG', `--device ${JSON.stringify(raw)}: the container path must be under /dev/`, { fix });
  }
  return { hostPath: host, containerPath: container.replace(/\/+$/, ''), access };
}

/** Pure: the rule and node for a device whose host node was stat'ed. */
export function deviceFromStat(req: DeviceRequest, st: { isCharacterDevice(): boolean; isBlockDevice(): boolean; rdev: number; mode: number }): { rule: DeviceRule; node: DeviceNode } {
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : null;
  if (type === null) {
    throw new TsmError('EINVAL_ARG', `--device ${req.hostPath} is not a device node`, { fix: 'name a character or block device, e.g. /dev/fuse or /dev/loop0' });
  }
  // glibc's gnu_dev_major/minor for a 64-bit dev_t as Node reports it
  const major = ((st.rdev >>> 8) & 0xfff) | (Math.floor(st.rdev / 2 ** 32) & ~0xfff);
  const minor = (st.rdev & 0xff) | ((st.rdev >>> 12) & ~0xff);
  return {
    rule: { type, major, minor, access: req.access },
    node: { path: req.containerPath, hostPath: req.hostPath, type, major, minor, mode: st.mode & 0o7777 },
  };
}
