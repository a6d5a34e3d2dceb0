/**
 * The history of moves made from this host, one JSON line per outcome in
 * <root>/migrations/history.jsonl: every move that started leaves a line
 * (committed, rolled back, failed after its decision, refused before
 * anything was sent), and a move finished later by `recover` (or any other
 * guard) leaves another line with the same id. The one place that writes it.
 *
 * Lines written before outcomes were recorded are bare MoveReports: they were
 * only written for committed moves, and read as such.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { StatePaths } from '../state/paths.js';
import type { PastMove } from './estimate.js';
import type { SourcePhase } from './phases.js';
import type { MoveReport } from './report.js';

export type MoveOutcome =
  | 'committed' // the container runs on the peer; report holds the figures
  | 'rolled-back' // given up before the decision: the container runs here (reason: why)
  | 'failed' // decided, not finished: `tsmigrate recover` finishes it (reason: why)
  | 'refused' // failed before anything was sent (pre-flight, connection, host key): nothing changed
  | 'recovered'; // an earlier unfinished move finished by recover or a guard (finished: which way)

export interface MoveHistoryEntry {
  id: string;
  name: string;
  host: string;
  outcome: MoveOutcome;
  /** why it did not commit: the error's one line */
  reason?: string;
  /** recovered: which way it ended */
  finished?: 'committed' | 'rolled-back';
  /** committed by this command: the figures */
  report?: MoveReport;
  at: string;
}

const OUTCOMES: readonly MoveOutcome[] = ['committed', 'rolled-back', 'failed', 'refused', 'recovered'];
const MAX_REASON = 1000;

export function historyFile(p: StatePaths): string {
  return path.join(p.root, 'migrations', 'history.jsonl');
}

/**
 * Append one entry. Never throws: a move's outcome must not be changed by its
 * history (a full disk, say); returns whether the line was written.
 */
export async function recordMove(p: StatePaths, entry: MoveHistoryEntry): Promise<boolean> {
  const e: MoveHistoryEntry = entry.reason === undefined ? entry : { ...entry, reason: oneLine(entry.reason) };
  try {
    await fs.mkdir(path.dirname(historyFile(p)), { recursive: true, mode: 0o700 });
    await fs.appendFile(historyFile(p), JSON.stringify(e) + '\n', { mode: 0o600 });
    return true;
  } catch {
    return false;
  }
}

/** What ended a move that threw: the phase its journal reached, whether the peer began to receive it, an interrupt. */
export interface FailedMoveFacts {
  phase: SourcePhase;
  begun: boolean;
  interrupted: boolean;
}

/**
 * How a move that threw ended. Pure. Rolled back (or its abort still to be
 * delivered) before the peer began to receive it, and not interrupted: refused
 * (the pre-flight, the downtime estimate, the connection; nothing was frozen
 * or made there). Committed but not cleaned up: committed. Any other phase
 * is unfinished: failed, for recover.
 */
export function failedMoveOutcome(f: FailedMoveFacts): MoveOutcome {
  if (f.phase === 'aborted' || f.phase === 'abort-pending') return !f.begun && !f.interrupted ? 'refused' : 'rolled-back';
  if (f.phase === 'committed' || f.phase === 'done') return 'committed';
  return 'failed';
}

/** The one line an error leaves in the history: its message and fix, control characters out. Pure. */
export function reasonOf(e: unknown): string {
  return oneLine(e instanceof TsmError ? e.oneLine() : e instanceof Error ? e.message : String(e));
}

/** recordMove for a move that threw; `e` is what the command reports. Never throws. */
export function recordFailedMove(p: StatePaths, move: { id: string; name: string; host: string }, e: unknown, f: FailedMoveFacts): Promise<boolean> {
  return recordMove(p, { ...move, outcome: failedMoveOutcome(f), reason: reasonOf(e), at: new Date().toISOString() });
}

/**
 * recordMove for a recovery that brought a journal from `before` to a final
 * phase (done: committed; aborted: rolled back); nothing for one that did not
 * finish it. Never throws.
 */
export async function recordRecovery(
  p: StatePaths,
  move: { id: string; name: string; host: string },
  before: SourcePhase,
  after: SourcePhase,
  what: { action: string; detail: string },
): Promise<boolean> {
  if (before === after || (after !== 'done' && after !== 'aborted')) return false;
  const finished = after === 'done' ? 'committed' : 'rolled-back';
  return recordMove(p, { ...move, outcome: 'recovered', finished, reason: `${what.action} by recover: ${what.detail}`, at: new Date().toISOString() });
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return t.length > MAX_REASON ? `${t.slice(0, MAX_REASON - 3)}...` : t;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** One line of the history file: an entry, an old bare report (committed), or null. Pure. */
export function parseHistoryLine(line: string): MoveHistoryEntry | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (!isObject(v) || typeof v['id'] !== 'string' || typeof v['name'] !== 'string' || typeof v['host'] !== 'string') return null;
  const at = typeof v['at'] === 'string' ? v['at'] : '';
  if (v['outcome'] === undefined && isObject(v['downtime'])) {
    return { id: v['id'], name: v['name'], host: v['host'], outcome: 'committed', report: v as unknown as MoveReport, at };
  }
  if (!OUTCOMES.includes(v['outcome'] as MoveOutcome)) return null;
  const e: MoveHistoryEntry = { id: v['id'], name: v['name'], host: v['host'], outcome: v['outcome'] as MoveOutcome, at };
  if (typeof v['reason'] === 'string') e.reason = v['reason'];
  if (v['finished'] === 'committed' || v['finished'] === 'rolled-back') e.finished = v['finished'];
  if (isObject(v['report']) && isObject(v['report']['downtime'])) e.report = v['report'] as unknown as MoveReport;
  return e;
}

/** Every entry, oldest first (lines that cannot be read, e.g. torn by a crash, are skipped). */
export async function readHistory(p: StatePaths): Promise<MoveHistoryEntry[]> {
  const text = await fs.readFile(historyFile(p), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).flatMap((l) => parseHistoryLine(l) ?? []);
}

/** What the downtime estimate learns from: this host's committed moves. */
export async function pastMoves(p: StatePaths): Promise<PastMove[]> {
  return (await readHistory(p)).flatMap((e) => {
    const r = e.report;
    if (e.outcome !== 'committed' || !r?.downtime || !r.restoreParts || !(r.bytes?.imagesTar > 0)) return [];
    const d = r.downtime;
    const overheadMs = d.freezeMs + d.resumeMs + Math.max(0, r.restoreParts.setupMs);
    return [{ memoryBytes: r.bytes.imagesTar, dumpMs: d.dumpMs, criuRestoreMs: r.restoreParts.criuMs, overheadMs }];
  });
}
