/**
 * A restore that runs while the images still arrive: `criu restore --stream`
 * asks native/bin/tsm-streamer (serve mode) for every image, and the streamer
 * hands each one over from the images directory as far as it is written,
 * waiting for the rest. The writer of the directory (live-images.ts
 * LiveImageWriter) tells this object what it wrote:
 *
 *   const srv = await serveImages(dir);            // before CRIU starts
 *   onManifest: (files) => srv.manifest(files)      // every image, its final size
 *   onWritten: (name, size) => srv.written(name, size)
 *   ...stream ended whole: srv.end(); failed: srv.end() too (the streamer
 *   then exits 3 and CRIU fails on an image cut short); await srv.done.
 *
 * CRIU asks for the small images first and reads the pages last, in order, so
 * the restore's set-up and most of its page copying overlap the transfer.
 */
import { STREAMER_SOCKET, startStreamer } from './streamer-process.js';

/** CRIU connects to DIR/streamer-serve.sock. */
export const SERVE_SOCKET = STREAMER_SOCKET.serve;
/** progress is told to the streamer in steps of at least this much (and at a file's end) */
const STEP = 1 << 20;

export interface ImageServer {
  /** every image and its final size; names not listed do not exist (once) */
  manifest(files: ReadonlyArray<readonly [string, number]>): void;
  /** the first `size` bytes of `name` are in the directory */
  written(name: string, size: number): void;
  /** no more data comes: what is whole is served on; if anything is not, the streamer stops */
  end(): void;
  kill(): void;
  /** resolves once it has exited: undefined after a clean exit, else its reason */
  done: Promise<string | undefined>;
}

/** Start the streamer on `dir` (which must exist); resolves once CRIU may connect. */
export async function serveImages(dir: string, o: { env?: NodeJS.ProcessEnv } = {}): Promise<ImageServer> {
  const p = await startStreamer('serve', dir, {
    ...(o.env ? { env: o.env } : {}),
    what: "restore while CRIU's images arrive",
    fix: 'run scripts/setup.sh (it builds native/); the move then restores after the transfer',
  });
  const sizes = new Map<string, number>();
  const told = new Map<string, number>();
  let ended = false;
  const send = (text: string) => {
    if (!ended && !p.exited()) p.child.stdin.write(text);
  };
  return {
    manifest(files) {
      if (sizes.size) return;
      for (const [name, size] of files) sizes.set(name, size);
      send(files.map(([name, size]) => `f ${size} ${name}\n`).join('') + 'm\n');
    },
    written(name, size) {
      const last = told.get(name) ?? 0;
      const total = sizes.get(name);
      if (total === undefined || size <= last || (size - last < STEP && size !== total)) return;
      told.set(name, size);
      send(`a ${size} ${name}\n`);
    },
    end() {
      if (ended) return;
      ended = true;
      p.child.stdin.end();
    },
    kill: () => p.child.kill('SIGKILL'),
    done: p.exit.then((x) => (x.code === 0 ? undefined : p.failure())),
  };
}
