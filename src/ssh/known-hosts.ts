import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../state/atomic.js';

/**
 * OpenSSH known_hosts files (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"):
 *
 *   [@revoked|@cert-authority] HOSTS KEYTYPE BASE64KEY [COMMENT]
 *
 * HOSTS is a comma list of patterns (`*`, `?`, `!negation`, `[host]:port` for
 * ports other than 22) or one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
 * Host names match case-insensitively. `@cert-authority` lines are not supported:
 * they never match. Unparseable lines are skipped (and listed in `problems`), as
 * OpenSSH does.
 */
export type KnownHostMarker = 'revoked' | 'cert-authority' | null;

export interface KnownHostEntry {
  file: string;
  /** 1-based */
  line: number;
  marker: KnownHostMarker;
  hosts: { kind: 'patterns'; patterns: string[] } | { kind: 'hashed'; salt: Buffer; hash: Buffer };
  /** as written, e.g. ssh-ed25519; always equal to the type inside `key` */
  keyType: string;
  /** the SSH wire-format public key blob */
  key: Buffer;
  comment: string;
}

export interface KnownHostsProblem {
  file: string;
  line: number;
  message: string;
}

export type VerifyResult = 'match' | 'mismatch' | 'unknown' | 'revoked';

export interface VerifyDetail {
  status: VerifyResult;
  /** the name looked up: `host` for port 22, else `[host]:port` */
  name: string;
  keyType: string;
  /** the entry that decided a match, a revocation or (the first of) a mismatch */
  entry: KnownHostEntry | null;
  /** all usable (unmarked) entries for this host, any key type */
  known: KnownHostEntry[];
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. Lowercased. */
export function knownHostName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** `|1|salt|hmac` for a name (see knownHostName); salt is 20 random bytes unless given. */
export function hashKnownHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const mac = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${mac.toString('base64')}`;
}

/** OpenSSH-style fingerprint: `SHA256:` + unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written at the start of a wire-format key blob; null when malformed. */
export function keyTypeOf(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || 4 + n > blob.length) return null;
  const t = blob.subarray(4, 4 + n).toString('latin1');
  return /^[A-Za-z0-9@._-]+$/.test(t) ? t : null;
}

/** One OpenSSH wildcard pattern (`*`, `?`) against a string; both already lowercased. */
export function wildcardMatch(s: string, pattern: string): boolean {
  // Iterative glob with backtracking on the last `*`.
  let si = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    const pc = pattern[pi];
    if (pc === '*') {
      star = pi++;
      mark = si;
    } else if (pc !== undefined && (pc === '?' || pc === s[si])) {
      si++;
      pi++;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pattern[pi] === '*') pi++;
  return pi === pattern.length;
}

/**
 * OpenSSH match_pattern_list: 1 when some positive pattern matches and no
 * negated one does, -1 when a negated pattern matches, 0 otherwise.
 */
export function matchPatternList(name: string, patterns: readonly string[]): -1 | 0 | 1 {
  const s = name.toLowerCase();
  let got: 0 | 1 = 0;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const p = (negated ? raw.slice(1) : raw).toLowerCase();
    if (p === '') continue;
    if (wildcardMatch(s, p)) {
      if (negated) return -1;
      got = 1;
    }
  }
  return got;
}

function hashedMatches(name: string, salt: Buffer, hash: Buffer): boolean {
  const mac = createHmac('sha1', salt).update(name).digest();
  return mac.length === hash.length && timingSafeEqual(mac, hash);
}

/** Does an entry's host field name this host:port? (Markers are not considered here.) */
export function entryMatchesHost(e: KnownHostEntry, host: string, port: number): boolean {
  const name = knownHostName(host, port);
  if (e.hosts.kind === 'hashed') return hashedMatches(name, e.hosts.salt, e.hosts.hash);
  return matchPatternList(name, e.hosts.patterns) === 1;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

function parseHashed(field: string): { salt: Buffer; hash: Buffer } | null {
  const m = /^\|1\|([^|]+)\|([^|]+)$/.exec(field);
  if (!m || !B64.test(m[1] ?? '') || !B64.test(m[2] ?? '')) return null;
  const salt = Buffer.from(m[1] ?? '', 'base64');
  const hash = Buffer.from(m[2] ?? '', 'base64');
  if (salt.length !== 20 || hash.length !== 20) return null;
  return { salt, hash };
}

export function parseKnownHosts(text: string, file = '<known_hosts>'): { entries: KnownHostEntry[]; problems: KnownHostsProblem[] } {
  const entries: KnownHostEntry[] = [];
  const problems: KnownHostsProblem[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const bad = (message: string) => problems.push({ file, line: lineNo, message });
    const fields = line.split(/[ \t]+/);
    let marker: KnownHostMarker = null;
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else {
        bad(`unknown marker ${m}`);
        continue;
      }
    }
    const [hostField, keyType, keyB64, ...rest] = fields;
    if (!hostField || !keyType || !keyB64) {
      bad('expected HOSTS KEYTYPE KEY');
      continue;
    }
    let hosts: KnownHostEntry['hosts'];
    if (hostField.startsWith('|')) {
      const h = parseHashed(hostField);
      if (!h) {
        bad('malformed hashed host name (expected |1|salt|hash)');
        continue;
      }
      hosts = { kind: 'hashed', ...h };
    } else {
      hosts = { kind: 'patterns', patterns: hostField.split(',').filter((p) => p !== '') };
      if (hosts.patterns.length === 0) {
        bad('empty host list');
        continue;
      }
    }
    if (!B64.test(keyB64)) {
      bad(`key is not base64 (${keyType})`);
      continue;
    }
    const key = Buffer.from(keyB64, 'base64');
    const inner = keyTypeOf(key);
    if (inner === null || inner !== keyType) {
      bad(`key type ${keyType} does not match the key (${inner ?? 'malformed key'})`);
      continue;
    }
    entries.push({ file, line: lineNo, marker, hosts, keyType, key, comment: rest.join(' ') });
  }
  return { entries, problems };
}

export class KnownHosts {
  constructor(
    readonly entries: KnownHostEntry[],
    readonly problems: KnownHostsProblem[] = [],
  ) {}

  static parse(text: string, file?: string): KnownHosts {
    const r = parseKnownHosts(text, file);
    return new KnownHosts(r.entries, r.problems);
  }

  /** Reads the files in order; a missing file is an empty one. */
  static async load(files: readonly string[]): Promise<KnownHosts> {
    const entries: KnownHostEntry[] = [];
    const problems: KnownHostsProblem[] = [];
    for (const f of files) {
      let text: string;
      try {
        text = await fs.readFile(f, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      const r = parseKnownHosts(text, f);
      entries.push(...r.entries);
      problems.push(...r.problems);
    }
    return new KnownHosts(entries, problems);
  }

  /**
   * Entries naming host:port (plain and @revoked; @cert-authority never matches),
   * optionally only those of one key type.
   */
  lookup(host: string, port: number, keyType?: string): KnownHostEntry[] {
    return this.entries.filter(
      (e) => e.marker !== 'cert-authority' && (keyType === undefined || e.keyType === keyType) && entryMatchesHost(e, host, port),
    );
  }

  verify(host: string, port: number, presentedKey: Buffer): VerifyResult {
    return this.check(host, port, presentedKey).status;
  }

  /** verify() with the entries that decided it. */
  check(host: string, port: number, presentedKey: Buffer): VerifyDetail {
    const keyType = keyTypeOf(presentedKey) ?? '?';
    const name = knownHostName(host, port);
    const matching = this.lookup(host, port);
    const known = matching.filter((e) => e.marker === null);
    const detail = (status: VerifyResult, entry: KnownHostEntry | null): VerifyDetail => ({ status, name, keyType, entry, known });
    const revoked = matching.find((e) => e.marker === 'revoked' && e.key.equals(presentedKey));
    if (revoked) return detail('revoked', revoked);
    const same = known.find((e) => e.key.equals(presentedKey));
    if (same) return detail('match', same);
    const other = known.find((e) => e.keyType === keyType);
    if (other) return detail('mismatch', other);
    return detail('unknown', null);
  }
}

/** A known_hosts line for host:port (hashed unless told otherwise), without newline. */
export function formatKnownHostLine(host: string, port: number, blob: Buffer, opts: { hash?: boolean } = {}): string {
  const type = keyTypeOf(blob);
  if (type === null) throw new Error('malformed public key blob');
  const name = knownHostName(host, port);
  return `${opts.hash === false ? name : hashKnownHostName(name)} ${type} ${blob.toString('base64')}`;
}

/**
 * Appends one entry for host:port: a single O_APPEND write (so concurrent
 * appends do not lose lines), fsync'd. Creates the file (0600) and its
 * directory when missing. Returns the line written.
 */
export async function appendKnownHost(file: string, host: string, port: number, blob: Buffer, opts: { hash?: boolean } = {}): Promise<string> {
  const line = formatKnownHostLine(host, port, blob, opts);
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  const fh = await fs.open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  let created = false;
  try {
    const st = await fh.stat();
    created = st.size === 0;
    let prefix = '';
    if (st.size > 0) {
      // keep a file that lacks its final newline well-formed
      const last = Buffer.alloc(1);
      const rfh = await fs.open(file, 'r');
      try {
        await rfh.read(last, 0, 1, st.size - 1);
      } finally {
        await rfh.close();
      }
      if (last[0] !== 0x0a) prefix = '\n';
    }
    await fh.write(`${prefix}${line}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (created) await fsyncDir(dir);
  return line;
}
