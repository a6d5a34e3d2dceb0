/**
 * What a tar entry's header and PAX records say about the file beyond its
 * name and type: mode, owner, times (nanoseconds from PAX), extended
 * attributes; and applying the times without following a link.
 */
import type tar from 'tar-stream';
import * as native from '../native/native.js';
import type { At } from './beneath.js';
import { decodeXattrPax, parsePaxTime, type TimeNs } from './xattr-pax.js';

export type PaxHeaders = Record<string, string>;

/** tar-stream's header; `type` may be anything for unknown typeflags, `pax` holds the PAX records. */
export type Header = Omit<tar.Header, 'type' | 'pax'> & { type: string | null; pax?: PaxHeaders | null };

export interface Attrs {
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  /** Exact times from the PAX `mtime` (and `atime`, else = mtime) records, when present. */
  times: { atime: TimeNs; mtime: TimeNs } | null;
  xattrs: Xattr[];
}

export interface Xattr {
  name: string;
  value: Buffer;
}

export function attrsOf(h: Header, problem: (msg: string) => void): Attrs {
  const pax = h.pax ?? {};
  const int = (v: string | undefined): number | undefined => {
    if (v === undefined || !/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : undefined;
  };
  let mtime = h.mtime instanceof Date ? h.mtime : new Date(0);
  const paxMtime = pax['mtime'];
  if (paxMtime !== undefined && /^-?\d+(\.\d+)?$/.test(paxMtime)) mtime = new Date(Number(paxMtime) * 1000);
  if (Number.isNaN(mtime.getTime())) mtime = new Date(0);
  const exactM = paxMtime === undefined ? null : parsePaxTime(paxMtime);
  const paxAtime = pax['atime'];
  const exactA = paxAtime === undefined ? null : parsePaxTime(paxAtime);
  return {
    mode: (h.mode ?? 0o644) & 0o7777,
    uid: int(pax['uid']) ?? h.uid ?? 0,
    gid: int(pax['gid']) ?? h.gid ?? 0,
    mtime,
    times: exactM === null ? null : { mtime: exactM, atime: exactA ?? exactM },
    xattrs: paxXattrs(pax, problem),
  };
}

/**
 * Extended attributes recorded in PAX headers:
 *  - TSMIGRATE.xattr.ENCODED-NAME=BASE64 (tsmigrate, xattr-pax.ts): exact;
 *    wins over the two below for the same name.
 *  - SCHILY.xattr.NAME=VALUE (GNU tar, star): tar-stream decodes the value as
 *    UTF-8, so a binary value (e.g. security.capability) cannot be recovered
 *    exactly; such values are reported, not written.
 *  - LIBARCHIVE.xattr.URLENCODED-NAME=BASE64 (bsdtar): exact.
 */
export function paxXattrs(pax: PaxHeaders, problem: (msg: string) => void): Xattr[] {
  const ours = decodeXattrPax(pax, problem);
  const have = new Set(ours.map((x) => x.name));
  const out: Xattr[] = [];
  for (const [key, value] of Object.entries(pax)) {
    if (key.startsWith('SCHILY.xattr.')) {
      const name = key.slice('SCHILY.xattr.'.length);
      if (value.includes('\uFFFD')) {
        problem(`xattr ${name} has a binary value that cannot be read from this archive`);
        continue;
      }
      out.push({ name, value: Buffer.from(value, 'utf8') });
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      let name: string;
      try {
        name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      } catch {
        problem(`xattr key ${key} is not valid`);
        continue;
      }
      out.push({ name, value: Buffer.from(value, 'base64') });
    }
  }
  return [...out.filter((x) => !have.has(x.name)), ...ours];
}

/** Set atime/mtime (nanoseconds from PAX, else the header's mtime for both) on `where`'s fd, or on `at` (not followed). */
export function setTimes(a: Attrs, where: { fd: number } | null, at: At | null): void {
  const ms = a.mtime.getTime();
  const fromHeader: TimeNs = { sec: BigInt(Math.floor(ms / 1000)), nsec: (((ms % 1000) + 1000) % 1000) * 1_000_000 };
  const t = a.times ?? { atime: fromHeader, mtime: fromHeader };
  if (where !== null) native.futimesNs(where.fd, t.atime.sec, t.atime.nsec, t.mtime.sec, t.mtime.nsec);
  else if (at !== null) native.lutimensat(at.fd, at.name, t.atime.sec, t.atime.nsec, t.mtime.sec, t.mtime.nsec);
}
