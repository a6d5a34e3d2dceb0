/**
 * A restore that runs while the images still arrive: `criu restore --stream`
 * asks native/bin/tsm-streamer (serve mode) for every image, and the streamer
 * hands each one over from the images directory as far as it is written,
 * waiting for the rest. The writer of the directory (live-images.ts
 * LiveImageWriter) tells this object what it wrote:
 *
 *   const srv = await serveImages(dir, streamer);            // before CRIU starts
 *   onManifest: (files) => srv.manifest(files)      // every image, its final size
 *   onWritten: (name, size) => srv.written(name, size)
 *   ...stream ended whole: srv.end(); failed: srv.end() too (the streamer
 *   then exits 3 and CRIU fails on an image cut short); await srv.done.
 *
 * CRIU asks for the small images first and reads the pages last, in order, so
 * the restore's set-up and most of its page copying overlap the transfer.
 * The streamer sums every image as it hands it over (`served`), so that what
 * CRIU consumed can be checked against what arrived (image-sums.ts).
 */
import { createInterface } from 'node:readline';
import { STREAMER_SOCKET, startStreamer } from './streamer-process.js';
import type { ImageSum } from './image-sums.js';

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
  /** every image served whole so far (one entry per time CRIU asked for it), with the sum of the bytes CRIU got */
  served(): ImageSum[];
}

/** Start the streamer on `dir` (which must exist); resolves once CRIU may connect. */
export async function serveImages(dir: string, streamer: string): Promise<ImageServer> {
  const p = await startStreamer('serve', dir, {
    streamer,
    what: "restore while CRIU's images arrive",
    fix: 'run scripts/setup.sh (it builds native/); the move then restores after the transfer',
  });
  const sizes = new Map<string, number>();
  const told = new Map<string, number>();
  const served: ImageSum[] = [];
  const lines = createInterface({ input: p.child.stdout });
  lines.on('line', (l) => {
    const m = /^s (\S+) (\d+) ([0-9a-f]{8})$/.exec(l);
    if (m) served.push({ name: m[1]!, size: Number(m[2]), crc32: m[3]! });
  });
  // the last lines are read before `done` says it has exited
  const closed = new Promise<void>((resolve) => lines.once('close', resolve));
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
    done: Promise.all([p.exit, closed]).then(([x]) => (x.code === 0 ? undefined : p.failure())),
    served: () => [...served],
  };
}
