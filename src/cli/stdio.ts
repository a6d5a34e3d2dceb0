/**
 * The CLI's writes to stdout and stderr. A reader that went away (`| head -2`,
 * a closed terminal, `2>&-` turned into a broken pipe) makes a write fail with
 * EPIPE, which Node reports as an 'error' event on process.stdout/stderr: left
 * unhandled, it kills the process in the middle of whatever it was doing (a
 * move between its phases). Here such an error marks the stream broken and
 * nothing more is written to it; the command carries on and its exit code is
 * its own. (Node's stdio streams are never destroyed, so the flag is ours.)
 */
import { escapeLine, escapeText } from './output.js';

const broken = new WeakSet<NodeJS.WritableStream>();

function guard(s: NodeJS.WritableStream): void {
  if ((s as { tsmGuarded?: boolean }).tsmGuarded) return;
  (s as { tsmGuarded?: boolean }).tsmGuarded = true;
  // any error: a stream we cannot write to is one we stop writing to
  s.on('error', () => broken.add(s));
}

/** Install the guards; call before anything is written. */
export function guardStdio(): void {
  guard(process.stdout);
  guard(process.stderr);
}

/** Write to `s` unless it is broken; never throws. Returns whether it was written. */
export function writeTo(s: NodeJS.WritableStream, text: string): boolean {
  if (broken.has(s)) return false;
  guard(s);
  try {
    s.write(text);
    return true;
  } catch {
    broken.add(s);
    return false;
  }
}

/**
 * Everything the CLI prints goes through these two, so a name, path or
 * message that came from a file or a peer cannot drive the terminal: control
 * characters are written escaped (newline and tab are kept; a caller that
 * quotes such text inside one line escapes it with escapeLine first).
 */
export function writeOut(text: string): boolean {
  return writeTo(process.stdout, escapeText(text));
}

export function writeErr(text: string): boolean {
  return writeTo(process.stderr, escapeText(text));
}

/** One line on stderr (a log line, a warning): a newline inside it is escaped, one is added at the end. */
export function writeErrLine(text: string): boolean {
  return writeTo(process.stderr, `${escapeLine(text.endsWith('\n') ? text.slice(0, -1) : text)}\n`);
}

/** Redraw stderr's current line (a terminal's progress line): the only control sequence the CLI writes. */
export function redrawErrLine(text: string): boolean {
  return writeTo(process.stderr, `\r\x1b[K${escapeLine(text)}`);
}

/** Whether a write to `s` failed (tests). */
export function isBroken(s: NodeJS.WritableStream): boolean {
  return broken.has(s);
}
