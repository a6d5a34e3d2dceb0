/**
 * Block I/O throttles, pure: Podman's `--device-read-bps PATH:RATE` (and write-bps,
 * read-iops, write-iops), the v1 blkio.throttle.* lines and the v2 io.max lines
 * they become, and the reverse. The config keeps the device PATH; each host finds
 * the device's MAJOR:MINOR by path when it applies the limits (host.ts).
 */
import { TsmError } from '../errors/errors.js';
import { parseSize } from './size.js';

export interface DeviceRate {
  /** absolute path of a block device node, resolved on each host */
  path: string;
  /** bytes per second, or I/O operations per second */
  rate: number;
}

export type ThrottleKey = 'deviceReadBps' | 'deviceWriteBps' | 'deviceReadIops' | 'deviceWriteIops';

export interface ThrottleKind {
  key: ThrottleKey;
  flag: string;
  unit: 'bytes' | 'iops';
  v1File: string;
  /** the key in a v2 io.max line */
  v2Key: 'rbps' | 'wbps' | 'riops' | 'wiops';
}

export const THROTTLES: readonly ThrottleKind[] = [
  { key: 'deviceReadBps', flag: '--device-read-bps', unit: 'bytes', v1File: 'blkio.throttle.read_bps_device', v2Key: 'rbps' },
  { key: 'deviceWriteBps', flag: '--device-write-bps', unit: 'bytes', v1File: 'blkio.throttle.write_bps_device', v2Key: 'wbps' },
  { key: 'deviceReadIops', flag: '--device-read-iops', unit: 'iops', v1File: 'blkio.throttle.read_iops_device', v2Key: 'riops' },
  { key: 'deviceWriteIops', flag: '--device-write-iops', unit: 'iops', v1File: 'blkio.throttle.write_iops_device', v2Key: 'wiops' },
];

export type Throttles = Partial<Record<ThrottleKey, DeviceRate[]>>;

const U32_MAX = 0xffff_ffff;
const bad = (msg: string, fix: string): TsmError => new TsmError('EINVAL_ARG', msg, { fix });

/** `--device-read-bps /dev/sda:1mb` or `--device-read-iops /dev/sda:100` -> { path, rate }. */
export function parseDeviceRate(kind: ThrottleKind, input: string): DeviceRate {
  const example = kind.unit === 'bytes' ? '/dev/sda:1mb' : '/dev/sda:100';
  const fix = `use ${kind.flag} DEVICE:${kind.unit === 'bytes' ? 'RATE (bytes per second, e.g. 512k, 10mb)' : 'IOPS (a positive integer)'}, e.g. ${example}`;
  const i = input.lastIndexOf(':');
  if (i < 0) throw bad(`invalid ${kind.flag} ${JSON.stringify(input)}: expected DEVICE:RATE`, fix);
  const path = input.slice(0, i);
  const raw = input.slice(i + 1).trim();
  if (!path.startsWith('/') || path.includes('\0') || path.length > 4096) {
    throw bad(`invalid ${kind.flag} ${JSON.stringify(input)}: the device must be an absolute path such as /dev/sda`, fix);
  }
  if (kind.unit === 'iops') {
    if (!/^\d{1,10}$/.test(raw) || Number(raw) < 1 || Number(raw) > U32_MAX) {
      throw bad(`invalid ${kind.flag} ${JSON.stringify(input)}: ${JSON.stringify(raw)} is not a positive number of operations per second`, fix);
    }
    return { path, rate: Number(raw) };
  }
  try {
    return { path, rate: parseSize(raw) };
  } catch (e) {
    throw bad(`invalid ${kind.flag} ${JSON.stringify(input)}: ${(e as Error).message}`, fix);
  }
}

/** Sort by path and refuse a device given twice for one kind of throttle. */
export function canonicalRates(kind: ThrottleKind, list: DeviceRate[]): DeviceRate[] {
  const sorted = [...list].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.path === sorted[i - 1]!.path) throw bad(`${kind.flag} gives ${sorted[i]!.path} twice`, 'give each device once');
  }
  return sorted;
}

/** Every device path the throttles name, sorted, once each. */
export function throttledPaths(t: Throttles): string[] {
  return [...new Set(THROTTLES.flatMap((k) => (t[k.key] ?? []).map((r) => r.path)))].sort();
}

/** path -> "MAJOR:MINOR" on this host */
export type DeviceNumbers = ReadonlyMap<string, string>;

function devOf(devices: DeviceNumbers, path: string): string {
  const dev = devices.get(path);
  if (dev === undefined) throw new TsmError('EINTERNAL', `device ${path} was not resolved before planning its throttle`);
  return dev;
}

/** v1: one "MAJ:MIN RATE" write per device to each blkio.throttle.* file. */
export function throttleV1Files(t: Throttles, devices: DeviceNumbers): Array<{ file: string; value: string }> {
  return THROTTLES.flatMap((k) => (t[k.key] ?? []).map((r) => ({ file: k.v1File, value: `${devOf(devices, r.path)} ${r.rate}` })));
}

/** v2: one io.max line per device, "MAJ:MIN rbps=N wiops=M", with the keys that are set. */
export function ioMaxLines(t: Throttles, devices: DeviceNumbers): string[] {
  const byDev = new Map<string, string[]>();
  for (const k of THROTTLES) {
    for (const r of t[k.key] ?? []) {
      const dev = devOf(devices, r.path);
      byDev.set(dev, [...(byDev.get(dev) ?? []), `${k.v2Key}=${r.rate}`]);
    }
  }
  return [...byDev.entries()].sort(([a], [b]) => compareDev(a, b)).map(([dev, kv]) => `${dev} ${kv.join(' ')}`);
}

function compareDev(a: string, b: string): number {
  const [am, an] = a.split(':').map(Number) as [number, number];
  const [bm, bn] = b.split(':').map(Number) as [number, number];
  return am - bm || an - bn;
}

/** What a device number read back is called: the path the config named it by, else its sysfs entry. */
export function deviceName(dev: string, names: ReadonlyMap<string, string>): string {
  return names.get(dev) ?? `/sys/dev/block/${dev}`;
}

function push(t: Throttles, key: ThrottleKey, r: DeviceRate): void {
  (t[key] ??= []).push(r);
}

function sorted(t: Throttles): Throttles {
  for (const k of THROTTLES) t[k.key]?.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return t;
}

/** Reverse of throttleV1Files: `files` maps each blkio.throttle.* file to its content ("7:0 1048576" lines). */
export function parseV1Throttles(files: Record<string, string | undefined>, names: ReadonlyMap<string, string>): Throttles {
  const t: Throttles = {};
  for (const k of THROTTLES) {
    for (const line of (files[k.v1File] ?? '').split('\n')) {
      const m = /^(\d+:\d+)\s+(\d+)$/.exec(line.trim());
      if (m) push(t, k.key, { path: deviceName(m[1]!, names), rate: Number(m[2]) });
    }
  }
  return sorted(t);
}

/** Reverse of ioMaxLines: io.max content ("7:0 rbps=1048576 wbps=max riops=max wiops=max" lines). */
export function parseIoMax(text: string, names: ReadonlyMap<string, string>): Throttles {
  const t: Throttles = {};
  for (const line of text.split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    if (!dev || !/^\d+:\d+$/.test(dev)) continue;
    for (const kv of kvs) {
      const [key, value] = kv.split('=');
      const k = THROTTLES.find((x) => x.v2Key === key);
      if (k && value !== undefined && /^\d+$/.test(value)) push(t, k.key, { path: deviceName(dev, names), rate: Number(value) });
    }
  }
  return sorted(t);
}
