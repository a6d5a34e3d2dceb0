/** Table and size formatting, and the escaping of what came from a file or a peer, for the CLI (pure). */

/**
 * Characters a terminal acts on rather than shows: C0 controls (ESC starts
 * CSI/OSC sequences that move the cursor, retitle the window or write the
 * clipboard), DEL, C1 controls (U+009B is a one-character CSI on some
 * terminals), the line and paragraph separators, and the bidi embeddings,
 * overrides and isolates that make a name read differently from its bytes.
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** The same, less newline and tab: for text whose lines are ours. */
const UNSAFE_IN_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function visible(c: string): string {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** One line for a terminal: every control character (newlines too) shown as \xNN or \uNNNN. */
export function escapeLine(s: string): string {
  return s.replace(UNSAFE, visible);
}

/** Text of several lines for a terminal: controls escaped, newline and tab kept. */
export function escapeText(s: string): string {
  return s.replace(UNSAFE_IN_TEXT, visible);
}

/**
 * JSON for a terminal or a pipe: what JSON.stringify leaves raw (DEL, C1,
 * U+2028/9, bidi controls) written as \uNNNN escapes, so the text holds no
 * control character outside its own layout and parses to the same value.
 */
export function jsonText(v: unknown, indent?: number): string {
  return JSON.stringify(v, null, indent).replace(UNSAFE_IN_TEXT, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function humanBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)}${units[i]}`;
}

export function humanDuration(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '-';
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60}s`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h${Math.floor((sec % 3600) / 60)}m`;
  return `${Math.floor(sec / 86400)}d${Math.floor((sec % 86400) / 3600)}h`;
}

/** ps's OOM column: "-", or the kills and how long ago the last one was seen ("1, 5s ago") */
export function oomCell(kills: number, lastAt: string | null, now: number): string {
  if (kills === 0) return '-';
  const at = lastAt === null ? NaN : Date.parse(lastAt);
  return Number.isNaN(at) ? String(kills) : `${kills}, ${humanDuration(Math.max(0, Math.round((now - at) / 1000)))} ago`;
}

/** Cells are escaped as single lines: a name from a file cannot break the table or drive the terminal. */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map(escapeLine));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
