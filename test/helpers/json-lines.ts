import type { Readable } from 'node:stream';

/** A `--json` CLI's output line: an event (progress, done...) or undefined for a line that is not JSON. */
export type JsonEvent = { event?: string; phase?: string; report?: Record<string, unknown> } & Record<string, unknown>;

/**
 * Read `out` as lines of JSON as they arrive: each whole line is handed to
 * `onLine` with its parsed event (undefined when not JSON). Returns the text
 * read so far.
 */
export function jsonLines(out: Readable, onLine: (e: JsonEvent | undefined, line: string) => void): () => string {
  let text = '';
  let buf = '';
  out.setEncoding('utf8').on('data', (d: string) => {
    text += d;
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let e: JsonEvent | undefined;
      try {
        e = JSON.parse(line) as JsonEvent;
      } catch {
        e = undefined;
      }
      onLine(e, line);
    }
  });
  return () => text;
}
