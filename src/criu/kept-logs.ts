/**
 * The logs of failed CRIU runs, kept where the error message says they are:
 * `<root>/logs/criu/OP-CONTAINER-TIME.log` (dir 0700, files 0600). CRIU writes
 * its log into an images or work directory that the failed operation removes;
 * a copy is kept here instead.
 *
 * Bounded: each kept file holds at most the log's last KEPT_LOG_MAX_BYTES
 * (CRIU's errors come at the end; a marker line says what was cut), and after
 * every keep only the newest KEPT_LOGS_MAX_FILES files stay.
 *
 * The pure parts (names, pruning, the tail) are exported for tests; the key
 * lines an error quotes from the log are picked in errors.ts (criuKeyLines).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const KEPT_LOGS_MAX_FILES = 20;
export const KEPT_LOG_MAX_BYTES = 1 << 20;

export function keptLogsDir(root: string): string {
  return path.join(root, 'logs', 'criu');
}

/** "20261206-050102.123" (UTC): sortable, no colons. */
function stamp(at: Date): string {
  const iso = at.toISOString(); // 2026-12-06T05:01:02.123Z
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 23).replace(/:/g, '')}`;
}

/** Only [A-Za-z0-9._-] from a label (an operation or a container name), never empty. */
function label(s: string): string {
  const t = s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_').slice(0, 64);
  return t === '' ? '_' : t;
}

/** "dump-web-20261206-050102.123-1a2b.log"; container may be absent (a run for no container). Pure. */
export function keptLogName(op: string, container: string | undefined, at: Date, unique: string): string {
  return [label(op), ...(container !== undefined ? [label(container)] : []), stamp(at), label(unique)].join('-') + '.log';
}

/** The files to delete so that `max` remain: the oldest (by mtime, then name). Pure. */
export function planPrune(files: ReadonlyArray<{ name: string; mtimeMs: number }>, max = KEPT_LOGS_MAX_FILES): string[] {
  const sorted = [...files].sort((a, b) => a.mtimeMs - b.mtimeMs || a.name.localeCompare(b.name));
  return sorted.slice(0, Math.max(0, sorted.length - max)).map((f) => f.name);
}

/**
 * At most `max` bytes of `text`: the whole of it, or its tail from a line
 * start, after a line saying how much was left out. Pure.
 */
export function tailOfLog(text: string, max = KEPT_LOG_MAX_BYTES): Buffer {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= max) return buf;
  const head = (cut: number) => Buffer.from(`[tsmigrate: the first ${cut} bytes of this log were left out]\n`);
  let start = buf.length - (max - head(buf.length).length);
  const nl = buf.indexOf(0x0a, start);
  if (nl >= 0 && nl < buf.length - 1) start = nl + 1;
  return Buffer.concat([head(start), buf.subarray(start)]);
}

/** How an error names a kept log: on this host, or on the peer `host`. Pure. */
export function criuLogNote(file: string, host?: string): string {
  return host === undefined ? `(CRIU log: ${file})` : `(CRIU log on ${host}: ${file})`;
}

const LOCAL_NOTE = /\(CRIU log: (\/[^)\s]*)\)/g;

/** A peer's error text as the source shows it: its CRIU log notes name the peer. Pure. */
export function onPeer(text: string, host: string): string {
  return text.replace(LOCAL_NOTE, (_m, file: string) => criuLogNote(file, host));
}

export interface KeepRequest {
  /** The state root. */
  root: string;
  /** What CRIU was asked to do ("dump", "restore", "cpuinfo"...). */
  op: string;
  container?: string;
  /** The log (and whatever else CRIU printed) to keep. */
  text: string;
  at?: Date;
}

/**
 * Write the log's tail to a new file under <root>/logs/criu, then prune to
 * the newest KEPT_LOGS_MAX_FILES. Returns the file, or undefined when it could
 * not be written (the failure being reported matters more than its log).
 */
export async function keepCriuLog(r: KeepRequest): Promise<string | undefined> {
  const dir = keptLogsDir(r.root);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);
    const file = path.join(dir, keptLogName(r.op, r.container, r.at ?? new Date(), randomBytes(2).toString('hex')));
    await fs.writeFile(file, tailOfLog(r.text), { mode: 0o600, flag: 'wx' });
    await pruneKeptLogs(r.root);
    return file;
  } catch {
    return undefined;
  }
}

/** Delete all but the newest `max` kept logs. */
export async function pruneKeptLogs(root: string, max = KEPT_LOGS_MAX_FILES): Promise<void> {
  const dir = keptLogsDir(root);
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.log'));
  const files = await Promise.all(names.map(async (name) => ({ name, mtimeMs: (await fs.stat(path.join(dir, name)).catch(() => ({ mtimeMs: 0 }))).mtimeMs })));
  await Promise.all(planPrune(files, max).map((n) => fs.rm(path.join(dir, n), { force: true })));
}
