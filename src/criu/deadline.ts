/**
 * How long a CRIU run may take: a pure planner and the setting it reads.
 *
 * Every dump and restore gets a hard deadline that grows with the memory it
 * moves (and, where the images go over a link as CRIU writes them, with the
 * time that link needs for them), and a stall limit: how long CRIU may go
 * without any sign of progress (watchdog.ts) before it is killed.
 *
 * The setting, `--criu-deadline` or $TSMIGRATE_CRIU_DEADLINE:
 *   BASE[+PER/GiB][,stall=STALL|,stall=off]   seconds, e.g. "60+20/GiB,stall=30"
 */
import { TsmError } from '../errors/errors.js';

export interface CriuDeadlineSettings {
  /** seconds every run gets */
  readonly baseS: number;
  /** seconds more per GiB of the container's memory */
  readonly perGiBS: number;
  /** seconds without progress before CRIU is killed; 0: no stall watchdog */
  readonly stallS: number;
}

export const DEFAULT_CRIU_DEADLINE: CriuDeadlineSettings = Object.freeze({ baseS: 60, perGiBS: 20, stallS: 30 });

export interface CriuDeadline {
  /** kill CRIU this long after it started, whatever it does */
  hardMs: number;
  /** kill CRIU once nothing moved for this long; 0: never */
  stallMs: number;
  /** how hardMs came about, for the error message */
  why: string;
}

export interface CriuWork {
  /** the container's memory use (dump) or the size of its images (restore) */
  memoryBytes: number;
  /** bytes per second of the link the images cross while CRIU runs (a move's streamed dump), if any */
  linkBps?: number;
}

const GiB = 1024 ** 3;
/** a link measured before the freeze may be slower while the dump shares it: twice the time it needs */
const LINK_SLACK = 2;

/** Pure: the deadline of one CRIU run. */
export function planCriuDeadline(s: CriuDeadlineSettings, w: CriuWork): CriuDeadline {
  const gib = Math.max(0, w.memoryBytes) / GiB;
  const linkS = w.linkBps !== undefined && w.linkBps > 0 ? (LINK_SLACK * Math.max(0, w.memoryBytes)) / w.linkBps : 0;
  const hardS = s.baseS + s.perGiBS * gib + linkS;
  const size = gib >= 1 ? `${round1(gib)} GiB` : gib * 1024 >= 1 ? `${Math.round(gib * 1024)} MiB` : `${Math.round(gib * 1024 * 1024)} KiB`;
  const parts = [`${s.baseS} s`, `${s.perGiBS} s/GiB x ${size}`];
  if (linkS > 0) parts.push(`${Math.round(linkS)} s for the link`);
  return { hardMs: Math.round(hardS * 1000), stallMs: Math.round(s.stallS * 1000), why: parts.join(' + ') };
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** A setting as written: "60+20/GiB,stall=30". */
export function formatCriuDeadline(s: CriuDeadlineSettings): string {
  return `${s.baseS}+${s.perGiBS}/GiB,stall=${s.stallS === 0 ? 'off' : s.stallS}`;
}

const SPEC = /^(\d+(?:\.\d+)?)(?:\+(\d+(?:\.\d+)?)\/GiB)?(?:,stall=(\d+(?:\.\d+)?|off))?$/i;

/**
 * Parse a setting (see the file's comment); `from` names where it came from
 * (the flag or the variable) for the error. Omitted parts keep their defaults.
 */
export function parseCriuDeadline(spec: string, from: string): CriuDeadlineSettings {
  const m = SPEC.exec(spec.trim().replace(/\s+/g, ''));
  const base = m ? Number(m[1]) : NaN;
  const per = m?.[2] !== undefined ? Number(m[2]) : DEFAULT_CRIU_DEADLINE.perGiBS;
  const stall = m?.[3] === undefined ? DEFAULT_CRIU_DEADLINE.stallS : m[3].toLowerCase() === 'off' ? 0 : Number(m[3]);
  if (!m || !(base >= 1) || base > 86_400 || per > 86_400 || stall > 86_400 || (stall > 0 && stall < 1)) {
    throw new TsmError('EINVAL_ARG', `invalid ${from} ${JSON.stringify(spec)}`, {
      fix: 'give seconds as BASE[+PER/GiB][,stall=SECONDS|off], e.g. 60+20/GiB,stall=30 (BASE and stall at least 1)',
    });
  }
  return { baseS: base, perGiBS: per, stallS: stall };
}

/** The setting in force: the flag, else $TSMIGRATE_CRIU_DEADLINE, else the defaults. */
export function criuDeadlineSetting(flag: string | undefined, env: NodeJS.ProcessEnv): CriuDeadlineSettings {
  if (flag !== undefined) return parseCriuDeadline(flag, '--criu-deadline');
  const v = env['TSMIGRATE_CRIU_DEADLINE'];
  if (v !== undefined && v !== '') return parseCriuDeadline(v, 'TSMIGRATE_CRIU_DEADLINE');
  return DEFAULT_CRIU_DEADLINE;
}
