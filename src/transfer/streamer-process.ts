/**
 * native/bin/tsm-streamer as a child process, in either of its modes:
 * `capture` for `criu dump --stream` (stream-capture.ts), `serve` for
 * `criu restore --stream` (stream-serve.ts). Started before CRIU: it listens
 * on DIR/<mode's socket> and says "ready" on stderr; later stderr lines are
 * its errors, the last of which explains a failed exit.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { TsmError } from '../errors/errors.js';

export type StreamerMode = 'capture' | 'serve';

/** CRIU connects to DIR/<this>; a UNIX socket path holds at most 107 bytes. */
export const STREAMER_SOCKET: Record<StreamerMode, string> = { capture: 'streamer-capture.sock', serve: 'streamer-serve.sock' };
const MAX_SOCKET_PATH = 107;
const READY_TIMEOUT_MS = 10_000;

/** Why CRIU's images of `dir` cannot go through the streamer at `streamer` (Runtime.tools.streamer), or undefined when they can. */
export function cannotStream(dir: string, streamer: string): string | undefined {
  if (!existsSync(streamer)) return `the image streamer (${streamer}) is not built`;
  const longest = Math.max(...Object.values(STREAMER_SOCKET).map((s) => Buffer.byteLength(path.join(dir, s))));
  if (longest > MAX_SOCKET_PATH) return `the images directory's path is too long for CRIU's streamer socket (${dir})`;
  return undefined;
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface StreamerProcess {
  child: ChildProcessByStdio<Writable, Readable, Readable>;
  /** resolves when it has exited and its pipes closed */
  exit: Promise<Exit>;
  /** undefined while it runs */
  exited(): Exit | undefined;
  /** its last error line, or how it exited */
  failure(): string;
}

/** Start tsm-streamer MODE DIR; resolves once its socket listens (CRIU may start). */
export async function startStreamer(mode: StreamerMode, dir: string, o: { streamer: string; what: string; fix: string }): Promise<StreamerProcess> {
  const why = cannotStream(dir, o.streamer);
  if (why) throw new TsmError('ENATIVE', `cannot ${o.what}: ${why}`, { fix: o.fix });
  const child = spawn(o.streamer, [mode, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exited: Exit | undefined;
  const exit = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => resolve((exited = { code, signal })));
  });
  const spawnError = new Promise<Error>((resolve) => child.on('error', resolve));
  child.stdin.on('error', () => undefined); // it may exit first; its exit status tells why
  const failure = () => {
    const lines = stderr.split('\n').filter((l) => l && l !== 'ready');
    const how = exited?.signal ? `was killed by ${exited.signal}` : `exited with status ${exited?.code ?? '?'}`;
    return lines.at(-1) ?? `tsm-streamer ${how}`;
  };
  const ready = new Promise<void>((resolve) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-8192);
      if (stderr.startsWith('ready\n')) resolve();
    });
  });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exit.then(() => 'exited' as const),
    spawnError.then((e) => e),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    child.kill('SIGKILL');
    const what = outcome instanceof Error ? outcome.message : outcome === 'timeout' ? `did not start within ${READY_TIMEOUT_MS / 1000} s` : failure();
    throw new TsmError('ENATIVE', `cannot ${o.what}: ${what}`, { fix: o.fix });
  }
  return { child, exit, exited: () => exited, failure };
}
