/**
 * Binary-safe PAX records for what tsmigrate archives carry beyond plain tar:
 * extended attributes and nanosecond timestamps. Pure codecs (no I/O, no
 * native addon), shared by the packer (pack.ts) and the extractor
 * (safe-extract.ts).
 *
 * Extended attributes: one PAX record per attribute,
 *
 *     TSMIGRATE.xattr.<encoded name>=<base64 of the value>
 *
 * The value is standard base64 (RFC 4648, with padding), so any byte
 * (0x00, 0xff, invalid UTF-8) survives — tar-stream decodes PAX values as
 * UTF-8, which is why SCHILY.xattr.* cannot carry binary values. The name is
 * kept readable: bytes outside printable ASCII and the characters '%' and '='
 * (which would end a PAX key) are written as %XX of their UTF-8 bytes; a
 * normal name such as `trusted.overlay.opaque` is written as is. Every
 * namespace is carried (user, trusted, security, system.posix_acl_*); whether
 * the extractor may set it is its business (trusted.* and security.* need root).
 *
 * Timestamps: the standard PAX `mtime` / `atime` records, as a decimal
 * number of seconds with exactly nine fraction digits ("1700000000.123456789").
 * Times before the epoch are written as the real number they denote
 * (sec = -2, nsec = 250000000 is "-1.750000000"), as GNU tar does.
 */

/** PAX key prefix of an extended attribute. */
export const XATTR_PAX_PREFIX = 'TSMIGRATE.xattr.';

export interface XattrEntry {
  name: string;
  value: Buffer;
}

/** A timestamp with nanosecond precision. `nsec` is 0..999999999; `sec` may be negative. */
export interface TimeNs {
  sec: bigint;
  nsec: number;
}

/** Characters written as is in an encoded xattr name. */
const NAME_SAFE = /^[\x21-\x7e]$/;

/** The PAX key part for an xattr name (see the module comment). Throws on an empty name or a NUL byte. */
export function encodeXattrName(name: string): string {
  if (name === '' || name.includes('\0')) throw new Error(`invalid xattr name ${JSON.stringify(name)}`);
  let out = '';
  for (const ch of name) {
    if (NAME_SAFE.test(ch) && ch !== '%' && ch !== '=') {
      out += ch;
    } else {
      for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** Inverse of encodeXattrName. Throws on a malformed escape, invalid UTF-8, an empty name or a NUL. */
export function decodeXattrName(encoded: string): string {
  const bytes: number[] = [];
  // Tokens: an escape, a lone '%' (malformed), or a run of other characters.
  for (const m of encoded.matchAll(/%([0-9A-Fa-f]{2})|%|[^%]+/gu)) {
    if (m[1] !== undefined) bytes.push(parseInt(m[1], 16));
    else if (m[0] === '%') throw new Error(`bad escape in xattr name ${JSON.stringify(encoded)}`);
    else for (const b of Buffer.from(m[0], 'utf8')) bytes.push(b);
  }
  const buf = Buffer.from(bytes);
  const name = buf.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(buf)) throw new Error(`xattr name ${JSON.stringify(encoded)} is not valid UTF-8`);
  if (name === '' || name.includes('\0')) throw new Error(`invalid xattr name ${JSON.stringify(encoded)}`);
  return name;
}

/** Add one TSMIGRATE.xattr.* record per attribute to `pax` (created if omitted) and return it. */
export function encodeXattrPax(list: readonly XattrEntry[], pax: Record<string, string> = {}): Record<string, string> {
  for (const x of list) pax[XATTR_PAX_PREFIX + encodeXattrName(x.name)] = x.value.toString('base64');
  return pax;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The xattrs in TSMIGRATE.xattr.* records of `pax`, in key order. A
 * malformed record is reported through `problem` and skipped (never throws).
 */
export function decodeXattrPax(pax: Readonly<Record<string, string>>, problem: (msg: string) => void = () => undefined): XattrEntry[] {
  const out: XattrEntry[] = [];
  for (const [key, value] of Object.entries(pax)) {
    if (!key.startsWith(XATTR_PAX_PREFIX)) continue;
    let name: string;
    try {
      name = decodeXattrName(key.slice(XATTR_PAX_PREFIX.length));
    } catch (e) {
      problem(`xattr key ${JSON.stringify(key)} is not valid: ${(e as Error).message}`);
      continue;
    }
    if (!BASE64.test(value)) {
      problem(`xattr ${name} has a value that is not valid base64`);
      continue;
    }
    out.push({ name, value: Buffer.from(value, 'base64') });
  }
  return out;
}

// ---------------------------------------------------------------------------
// timestamps

const NS = 1_000_000_000n;

/** Nanoseconds since the epoch (e.g. lstat's bigint `mtimeNs`) as a TimeNs. */
export function timeFromNs(ns: bigint): TimeNs {
  let sec = ns / NS;
  let rem = ns % NS;
  if (rem < 0n) {
    rem += NS;
    sec -= 1n;
  }
  return { sec, nsec: Number(rem) };
}

/** TimeNs as nanoseconds since the epoch. */
export function timeToNs(t: TimeNs): bigint {
  return t.sec * NS + BigInt(t.nsec);
}

/** A PAX time record value: "SEC.NNNNNNNNN" (see the module comment). */
export function encodePaxTime(t: TimeNs): string {
  const ns = timeToNs(t);
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  return `${neg ? '-' : ''}${abs / NS}.${(abs % NS).toString().padStart(9, '0')}`;
}

/**
 * Parse a PAX time record ("1700000000", "1700000000.5", "-1.75"); digits
 * past the ninth fraction digit are dropped (truncation toward zero of the
 * magnitude). Returns null for anything else.
 */
export function parsePaxTime(s: string): TimeNs | null {
  const m = /^(-?)(\d{1,20})(?:\.(\d*))?$/.exec(s);
  if (m === null) return null;
  const frac = (m[3] ?? '').slice(0, 9).padEnd(9, '0');
  let ns = BigInt(m[2]!) * NS + BigInt(frac);
  if (m[1] === '-') ns = -ns;
  const t = timeFromNs(ns);
  // time_t is 64-bit.
  if (t.sec > 0x7fffffffffffffffn || t.sec < -0x8000000000000000n) return null;
  return t;
}
