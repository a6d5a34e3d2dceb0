/**
 * Finding the CRIU binary and asking it what it can do.
 *
 * Candidates, in order: `$TSMIGRATE_CRIU` (when set, it is the only candidate),
 * the private build that scripts/install-criu.sh puts in
 * /opt/tsmigrate/criu/bin/criu, then `criu` on PATH. The first one that runs
 * and is at least CRIU_MIN_VERSION wins. Commands run with argument arrays,
 * never through a shell.
 */
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { spawnCriu } from './spawn.js';

export interface CriuVersion {
  major: number;
  minor: number;
  patch: number;
}

export interface CriuBinary {
  /** Absolute path of the command to run (may be a wrapper script). */
  path: string;
  version: CriuVersion;
  /** As printed, e.g. "4.2.1". */
  versionText: string;
}

export const CRIU_MIN_VERSION: CriuVersion = { major: 4, minor: 2, patch: 0 };
/** Where scripts/install-criu.sh installs its wrapper by default. */
export const PRIVATE_CRIU_PATH = '/opt/tsmigrate/criu/bin/criu';
export const CRIU_FIX = 'run scripts/setup.sh as root (installs CRIU 4.2+)';

const VERSION_TIMEOUT_MS = 10_000;
const CHECK_TIMEOUT_MS = 60_000;

/**
 * Parse `criu --version` output ("Version: 4.2.1", "Version: 3.17", maybe
 * followed by a "GitID:" line). Returns null when there is no version line.
 */
export function parseCriuVersion(text: string): CriuVersion | null {
  const m = /^\s*Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/m.exec(text);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: m[3] === undefined ? 0 : Number(m[3]) };
}

/** <0, 0, >0 like a comparator. */
export function compareCriuVersion(a: CriuVersion, b: CriuVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

export function formatCriuVersion(v: CriuVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

async function isExecutableFile(p: string): Promise<boolean> {
  try {
    const st = await stat(p);
    if (!st.isFile()) return false;
    await access(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolve a command name on env.PATH like `command -v`, without a shell. */
async function whichOnPath(cmd: string, pathVar: string | undefined): Promise<string | null> {
  for (const dir of (pathVar ?? '').split(':')) {
    if (dir === '' || !path.isAbsolute(dir)) continue;
    const p = path.join(dir, cmd);
    if (await isExecutableFile(p)) return p;
  }
  return null;
}

type Probe =
  | { kind: 'ok'; bin: CriuBinary }
  | { kind: 'too-old'; path: string; versionText: string }
  | { kind: 'broken'; path: string; detail: string };

async function probe(p: string): Promise<Probe> {
  const r = await spawnCriu(p, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS }).result;
  const out = String(r.all ?? '');
  const v = parseCriuVersion(out);
  if (r.exitCode !== 0 || !v) {
    const first = out.trim().split('\n')[0] ?? '';
    return { kind: 'broken', path: p, detail: first || r.shortMessage || `exit code ${String(r.exitCode)}` };
  }
  const versionText = (/Version:\s*(\S+)/.exec(out)?.[1]) ?? formatCriuVersion(v);
  if (compareCriuVersion(v, CRIU_MIN_VERSION) < 0) return { kind: 'too-old', path: p, versionText };
  return { kind: 'ok', bin: { path: p, version: v, versionText } };
}

async function locateUncached(env: CriuSearch): Promise<CriuBinary> {
  const explicit = env.TSMIGRATE_CRIU;
  const candidates: string[] = [];
  const looked: string[] = [];
  if (explicit !== undefined && explicit !== '') {
    looked.push(`TSMIGRATE_CRIU=${explicit}`);
    const p = path.resolve(explicit);
    if (await isExecutableFile(p)) candidates.push(p);
  } else {
    looked.push(PRIVATE_CRIU_PATH, 'criu on PATH');
    if (await isExecutableFile(PRIVATE_CRIU_PATH)) candidates.push(PRIVATE_CRIU_PATH);
    const onPath = await whichOnPath('criu', env.PATH);
    if (onPath !== null && !candidates.includes(onPath)) candidates.push(onPath);
  }

  const tooOld: string[] = [];
  const broken: string[] = [];
  for (const c of candidates) {
    const r = await probe(c);
    if (r.kind === 'ok') return r.bin;
    if (r.kind === 'too-old') tooOld.push(`${r.versionText} at ${r.path}`);
    else broken.push(`${r.path}: ${r.detail}`);
  }
  const min = `${CRIU_MIN_VERSION.major}.${CRIU_MIN_VERSION.minor}`;
  if (tooOld.length > 0) {
    throw new TsmError('ECRIU_TOO_OLD', `CRIU is too old: found ${tooOld.join(', ')}, need ${min} or newer`, { fix: CRIU_FIX });
  }
  const detail = broken.length > 0 ? `; found but not runnable: ${broken.join('; ')}` : '';
  throw new TsmError('ECRIU_MISSING', `CRIU is not installed (looked for ${looked.join(', ')}${detail})`, { fix: CRIU_FIX });
}

/** Where CRIU is looked for: $TSMIGRATE_CRIU, else PATH and the private prefix (read once by the composition root). */
export interface CriuSearch {
  readonly TSMIGRATE_CRIU?: string | undefined;
  readonly PATH?: string | undefined;
}

const cache = new Map<string, Promise<CriuBinary>>();

/**
 * Find a usable CRIU (>= 4.2). Throws TsmError ECRIU_MISSING or ECRIU_TOO_OLD.
 * The answer is cached per process (per TSMIGRATE_CRIU/PATH); failures are not.
 */
export function locateCriu(env: CriuSearch): Promise<CriuBinary> {
  const key = `${env.TSMIGRATE_CRIU ?? ''}\0${env.PATH ?? ''}`;
  let p = cache.get(key);
  if (!p) {
    p = locateUncached(env);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

/** Forget cached locateCriu answers (tests, or after installing CRIU). */
export function resetCriuCache(): void {
  cache.clear();
}

/** `criu check`: ok when it exits 0 and says "Looks good." (warnings are fine). Needs root. */
export async function criuCheck(bin: CriuBinary): Promise<{ ok: boolean; output: string }> {
  const r = await spawnCriu(bin.path, ['check'], { timeoutMs: CHECK_TIMEOUT_MS }).result;
  const output = String(r.all ?? '');
  return { ok: r.exitCode === 0 && /Looks good/.test(output), output };
}

/**
 * Feature names understood by `criu check --feature NAME` (CRIU 4.2) that
 * tsmigrate cares about. Note there is no "lazy_pages" feature: lazy pages
 * need both `uffd` and `uffd-noncoop`; the nftables network-lock backend is
 * `network_lock_nftables` (iptables is the default backend and always there).
 */
export const CRIU_FEATURES = [
  'mem_dirty_track', // soft-dirty bits: iterative pre-dump / memory snapshots
  'uffd', // userfaultfd
  'uffd-noncoop', // non-cooperative userfaultfd: with uffd, lazy pages (post-copy)
  'timens', // time namespaces
  'tcp_half_closed', // dump half-closed TCP connections
  'network_lock_nftables', // --network-lock nftables
  'pagemap_scan', // PAGEMAP_SCAN ioctl
] as const;
export type CriuFeatureName = (typeof CRIU_FEATURES)[number];

/**
 * `criu check --feature NAME`: exit code 0 means supported. A name this CRIU
 * does not know throws TsmError ECRIU (catches typos such as "lazy_pages").
 */
export async function criuFeature(bin: CriuBinary, name: string): Promise<boolean> {
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
    throw new TsmError('EINVAL_ARG', `not a CRIU feature name: ${JSON.stringify(name)}`, { fix: `use one of ${CRIU_FEATURES.join(', ')}` });
  }
  const r = await spawnCriu(bin.path, ['check', '--feature', name], { timeoutMs: CHECK_TIMEOUT_MS }).result;
  if (r.exitCode === 0) return true;
  const out = String(r.all ?? '');
  if (/Unknown feature/.test(out)) {
    throw new TsmError('ECRIU', `CRIU ${bin.versionText} does not know the feature '${name}'`, { fix: `use one of ${CRIU_FEATURES.join(', ')}` });
  }
  if (r.exitCode === undefined) {
    throw new TsmError('ECRIU', `'${bin.path} check --feature ${name}' did not finish: ${r.shortMessage ?? 'unknown error'}`, { fix: CRIU_FIX });
  }
  return false;
}

/**
 * Probe several features one after another (criu check shares a kerndat cache
 * file, so the runs are not overlapped). Unknown names throw as in criuFeature.
 */
export async function probeFeatures<N extends string>(bin: CriuBinary, names: readonly N[]): Promise<Record<N, boolean>> {
  const out = {} as Record<N, boolean>;
  for (const n of names) out[n] = await criuFeature(bin, n);
  return out;
}

export interface CriuCapabilities {
  memDirtyTrack: boolean;
  lazyPages: boolean;
  timens: boolean;
  tcpHalfClosed: boolean;
  networkLockNftables: boolean;
}

/** The features of CRIU_FEATURES folded into what tsmigrate decides on. */
export async function probeCapabilities(bin: CriuBinary): Promise<CriuCapabilities> {
  const f = await probeFeatures(bin, CRIU_FEATURES);
  return {
    memDirtyTrack: f.mem_dirty_track,
    lazyPages: f.uffd && f['uffd-noncoop'],
    timens: f.timens,
    tcpHalfClosed: f.tcp_half_closed,
    networkLockNftables: f.network_lock_nftables,
  };
}
