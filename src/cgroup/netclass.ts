/**
 * The v1-only network controllers, pure: net_cls class ids (`--net-cls-classid`)
 * and net_prio priorities (`--net-prio IFACE=PRIO`), their files and read-back.
 *
 * net_prio names interfaces of the host's initial network namespace (the kernel
 * looks them up in init_net, as runc's and LXC's priorities do), not the
 * container's own eth0: it sets the priority of the container's packets where
 * they leave through that host interface.
 */
import { TsmError } from '../errors/errors.js';
import { isValidIfName } from '../network/bridge.js';

export interface NetPrio {
  iface: string;
  /** 0..2^32-1 (SO_PRIORITY of the container's sockets on that interface). */
  priority: number;
}

const U32_MAX = 0xffff_ffff;
const bad = (msg: string, fix: string): TsmError => new TsmError('EINVAL_ARG', msg, { fix });

/**
 * A class id as a number ("0x100001", "1048577") or as a tc handle "MAJOR:MINOR" in hex
 * ("10:1" = 0x00100001); 0 is the kernel's "no class" and is refused.
 */
export function parseNetClsClassid(input: string): number {
  const s = input.trim();
  const fix = 'use a tc class handle such as 10:1, or its number, e.g. 0x100001';
  let n: number;
  const handle = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(s);
  if (handle) n = parseInt(handle[1]!, 16) * 0x10000 + parseInt(handle[2]!, 16);
  else if (/^0x[0-9a-f]{1,8}$/i.test(s)) n = parseInt(s.slice(2), 16);
  else if (/^\d{1,10}$/.test(s)) n = Number(s);
  else throw bad(`invalid --net-cls-classid ${JSON.stringify(input)}`, fix);
  if (n > U32_MAX) throw bad(`--net-cls-classid ${JSON.stringify(input)} is larger than 32 bits`, fix);
  if (n === 0) throw bad('--net-cls-classid 0 is the kernel\'s "no class"', fix);
  return n;
}

/** 0x100001 -> "10:1", the tc handle a class id stands for. */
export function classidHandle(n: number): string {
  return `${Math.floor(n / 0x10000).toString(16)}:${(n % 0x10000).toString(16)}`;
}

/** `--net-prio eth0=5` -> { iface: 'eth0', priority: 5 }. */
export function parseNetPrio(input: string): NetPrio {
  const fix = 'use --net-prio IFACE=PRIORITY with a host interface name and an integer 0-4294967295, e.g. eth0=5';
  const i = input.indexOf('=');
  if (i < 0) throw bad(`invalid --net-prio ${JSON.stringify(input)}: no '='`, fix);
  const iface = input.slice(0, i);
  const p = input.slice(i + 1).trim();
  if (!isValidIfName(iface)) throw bad(`invalid --net-prio ${JSON.stringify(input)}: ${JSON.stringify(iface)} is not an interface name`, fix);
  if (!/^\d{1,10}$/.test(p) || Number(p) > U32_MAX) throw bad(`invalid --net-prio ${JSON.stringify(input)}: priority ${JSON.stringify(p)} is not an integer 0-4294967295`, fix);
  return { iface, priority: Number(p) };
}

/** Sort by interface and refuse an interface given twice. */
export function canonicalNetPrio(list: NetPrio[]): NetPrio[] {
  const sorted = [...list].sort((a, b) => (a.iface < b.iface ? -1 : a.iface > b.iface ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.iface === sorted[i - 1]!.iface) throw bad(`--net-prio gives ${sorted[i]!.iface} twice`, 'give each interface once');
  }
  return sorted;
}

/** One write per interface: the kernel parses one "IFACE PRIO" pair per write(2). */
export function ifpriomapWrites(list: NetPrio[]): string[] {
  return list.map((p) => `${p.iface} ${p.priority}`);
}

/** net_prio.ifpriomap ("lo 0\neth0 5") -> the interfaces with a priority other than 0, sorted. */
export function parseIfpriomap(text: string): NetPrio[] {
  const out: NetPrio[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\d+)$/.exec(line.trim());
    if (m && m[2] !== '0') out.push({ iface: m[1]!, priority: Number(m[2]) });
  }
  return canonicalNetPrio(out);
}
