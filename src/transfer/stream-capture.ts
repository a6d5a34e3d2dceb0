/**
 * CRIU's images taken straight from the dump: `criu dump --stream` hands every
 * image to native/bin/tsm-streamer through a pipe (CRIU's image-streamer
 * protocol), which writes them out as the record stream of live-images.ts.
 * Pages go from the frozen tasks to the SSH stream without being written to
 * tmpfs and read back: the same records, one copy and one tmpfs allocation
 * fewer per byte, on a source whose cores the transfer keeps busy.
 *
 *   const cap = await listenForImages(dir, streamer);         // before CRIU starts
 *   const dumped = runCriu(..., dumpArgv({ stream: true, imagesDir: dir }));
 *   sendReadable(cap.records(dumped), ...);
 *
 * The end record is written only once CRIU has exited 0, so a failed dump
 * never reaches the peer as a complete image set. The stream stopping early
 * (an abort, the peer gone) kills the streamer, and CRIU, writing into a
 * closed pipe, fails and cleans up as any failed dump does.
 */
import { Readable } from 'node:stream';
import { TsmError } from '../errors/errors.js';
import { STREAMER_SOCKET, startStreamer } from './streamer-process.js';

/** CRIU connects to DIR/streamer-capture.sock. */
export const CAPTURE_SOCKET = STREAMER_SOCKET.capture;

export interface ImageCapture {
  /**
   * The records of everything CRIU writes, ending with the end record once
   * `dumped` resolves. Call once. A failed dump fails the stream.
   */
  records(dumped: Promise<unknown>): Readable;
  /** Stop the streamer (when CRIU never started). */
  kill(): void;
}

/** Start tsm-streamer on `dir`; resolves once its socket listens (CRIU may start). */
export async function listenForImages(dir: string, streamer: string): Promise<ImageCapture> {
  const { child, exit, exited, failure } = await startStreamer('capture', dir, {
    streamer,
    what: "stream CRIU's images",
    fix: 'run scripts/setup.sh (it builds native/), or move with --criu-stream off',
  });
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
        // CRIU's own failure is the one to report (the streamer ends cleanly, without the end
        // record, when CRIU failed): the stream fails with it rather than ending short
        await dumped;
        if (code !== 0) {
          throw new TsmError('EIO', `streaming CRIU's images failed: ${failure()}`, { fix: "see the dump log in the move's staging directory; report a tsmigrate bug if CRIU succeeded" });
        }
      }
      const stream = Readable.from(run(), { objectMode: false });
      // stopped before the end (an abort, the peer gone, never read at all): stop the streamer,
      // or CRIU would block on a full pipe; it then fails on a broken pipe and cleans up
      stream.on('close', () => {
        if (!exited()) child.kill('SIGKILL');
      });
      return stream;
    },
  };
}
