/**
 * CRIU's images taken straight from the dump: `criu dump --stream` hands every
 * image to native/bin/tsm-streamer through a pipe (CRIU's image-streamer
 * protocol), which writes them out as the record stream of live-images.ts.
 * Pages go from the frozen tasks to the SSH stream without being written to
 * tmpfs and read back: the same records, one copy and one tmpfs allocation
 * fewer per byte, on a source whose cores the transfer keeps busy.
 *
 *   const cap = await listenForImages(dir);          // before CRIU starts
 *   const dumped = runCriu(..., dumpArgv({ stream: true, imagesDir: dir }));
 *   sendReadable(cap.records(dumped), ...);
 *
 * The end record is written only once CRIU has exited 0, so a failed dump
 * never reaches the peer as a complete image set. The stream stopping early
 * (an abort, the peer gone) kills the streamer, and CRIU, writing into a
 * closed pipe, fails and cleans up as any failed dump does.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors/errors.js';

/** CRIU connects to DIR/streamer-capture.sock; a UNIX socket path holds at most 107 bytes. */
export const CAPTURE_SOCKET = 'streamer-capture.sock';
const MAX_SOCKET_PATH = 107;
const READY_TIMEOUT_MS = 10_000;

/** The tsm-streamer binary: $TSMIGRATE_STREAMER, else native/bin/tsm-streamer in this checkout; undefined when not built. */
export function streamerPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const p = env['TSMIGRATE_STREAMER'] ?? path.resolve(here, '../../../native/bin/tsm-streamer');
  return existsSync(p) ? p : undefined;
}

/** Why images of `dir` cannot be streamed (the caller then follows files instead), or undefined when they can. */
export function cannotStream(dir: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!streamerPath(env)) return 'the image streamer (native/bin/tsm-streamer) is not built';
  if (Buffer.byteLength(path.join(dir, CAPTURE_SOCKET)) > MAX_SOCKET_PATH) return `the images directory's path is too long for CRIU's streamer socket (${dir})`;
  return undefined;
}

export interface ImageCapture {
  /**
   * The records of everything CRIU writes, ending with the end record once
   * `dumped` resolves. Call once. A failed dump fails the stream.
   */
  records(dumped: Promise<unknown>): Readable;
  /** Stop the streamer (when CRIU never started). */
  kill(): void;
}

type Streamer = ChildProcessByStdio<Writable, Readable, Readable>;

/** Start tsm-streamer on `dir`; resolves once its socket listens (CRIU may start). */
export async function listenForImages(dir: string, o: { env?: NodeJS.ProcessEnv } = {}): Promise<ImageCapture> {
  const why = cannotStream(dir, o.env);
  if (why) throw new TsmError('ENATIVE', `cannot stream CRIU's images: ${why}`, { fix: 'run scripts/setup.sh (it builds native/), or move with --criu-stream off' });
  const bin = streamerPath(o.env)!;
  const child: Streamer = spawn(bin, ['capture', dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
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
    throw new TsmError('ENATIVE', `cannot stream CRIU's images: ${what}`, { fix: 'run tsmigrate doctor; move with --criu-stream off to write the images to tmpfs instead' });
  }
  let used = false;
  return {
    kill: () => child.kill('SIGKILL'),
    records(dumped: Promise<unknown>): Readable {
      if (used) throw new TsmError('EINTERNAL', 'ImageCapture.records called twice', { fix: 'report a tsmigrate bug' });
      used = true;
      // the end record only after a successful dump; stdin closing without "ok" means: no end record
      dumped.then(
        () => child.stdin.end('ok\n'),
        () => child.stdin.end(),
      );
      async function* run(): AsyncGenerator<Buffer> {
        for await (const chunk of child.stdout) yield chunk as Buffer;
        const { code } = await exit;
        if (code !== 0) {
          // CRIU's own failure is the one to report; this is what the stream saw
          await dumped;
          throw new TsmError('EIO', `streaming CRIU's images failed: ${failure()}`, { fix: "see the dump log in the move's staging directory; report a tsmigrate bug if CRIU succeeded" });
        }
      }
      const stream = Readable.from(run(), { objectMode: false });
      // stopped before the end (an abort, the peer gone, never read at all): stop the streamer,
      // or CRIU would block on a full pipe; it then fails on a broken pipe and cleans up
      stream.on('close', () => {
        if (!exited) child.kill('SIGKILL');
      });
      return stream;
    },
  };
}
