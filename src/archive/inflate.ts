/**
 * zstd decompression of a stream from an untrusted place, bounded while it
 * streams: zstd-napi's DecompressStream pushes everything one input chunk
 * expands to at once, ignoring back-pressure (1 MiB of a bomb is gigabytes in
 * memory). Here each output buffer (zstd's block size) is handed on only when
 * the reader asks for more, and the decompressed bytes and the ratio are
 * checked against the limits (limits.ts) before it is handed on.
 */
import { Duplex, Transform } from 'node:stream';
import binding from 'zstd-napi/binding.js';
import { inflateProblem, limitError, type InflateLimits } from './limits.js';

/** Frames asking for a window above 2^25 (32 MiB) are refused: tsmigrate never writes them, and the window is memory. */
const WINDOW_LOG_MAX = 25;
const OUT_BUFFER = 1 << 20;

export interface InflateStream extends Duplex {
  /** compressed bytes read so far */
  readonly bytesIn: number;
  /** decompressed bytes handed on so far */
  readonly bytesOut: number;
}

/** A Duplex that decompresses zstd; `what` names the stream in a refusal ("the upper layer from 127.0.0.2"). */
export function inflateZstd(limits: InflateLimits, what: string): InflateStream {
  const counts = { bytesIn: 0, bytesOut: 0 };
  const out = Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    const dctx = new binding.DCtx();
    dctx.setParameter(binding.DParameter.windowLogMax, WINDOW_LOG_MAX);
    // larger than zstd's block (dStreamOutSize): fewer hand-overs; still what one read may hold
    const size = Math.max(binding.dStreamOutSize(), OUT_BUFFER);
    let inFrame = false;
    for await (const chunk of source) {
      counts.bytesIn += chunk.length;
      let src: Buffer = chunk;
      for (;;) {
        const dst = Buffer.allocUnsafe(size);
        const [ret, produced, consumed] = dctx.decompressStream(dst, src);
        src = src.subarray(consumed);
        if (produced > 0) {
          const problem = inflateProblem(limits, counts.bytesIn, counts.bytesOut + produced);
          if (problem !== null) throw limitError(what, problem);
          counts.bytesOut += produced;
          yield dst.subarray(0, produced);
        }
        if (src.length === 0 && (produced < dst.length || ret === 0)) {
          inFrame = ret !== 0;
          break;
        }
      }
    }
    if (inFrame) throw new Error(`${what} ends in the middle of a zstd frame`);
  }) as InflateStream;
  Object.defineProperty(out, 'bytesIn', { get: () => counts.bytesIn });
  Object.defineProperty(out, 'bytesOut', { get: () => counts.bytesOut });
  return out;
}

/**
 * For a decoder that is not ours (gzip): `count` before it tallies the
 * compressed bytes, `guard` after it checks the decompressed bytes against the
 * limits as they pass. (zlib's ratio is at most about 1000:1, so what one input
 * chunk expands to stays small.)
 */
export function ratioGuard(limits: InflateLimits, what: string): { count: Transform; guard: Transform } {
  let bytesIn = 0;
  let bytesOut = 0;
  const count = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytesIn += chunk.length;
      cb(null, chunk);
    },
  });
  const guard = new Transform({
    transform(chunk: Buffer, _e, cb) {
      bytesOut += chunk.length;
      const problem = inflateProblem(limits, bytesIn, bytesOut);
      cb(problem === null ? null : limitError(what, problem), problem === null ? chunk : undefined);
    },
  });
  return { count, guard };
}
