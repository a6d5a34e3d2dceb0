import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CriuSearch } from '../criu/binary.js';

/**
 * Where the external programs are, read once from the environment at the
 * composition root (context.ts) and passed down: nothing below reads
 * $TSMIGRATE_CRIU, $TSMIGRATE_SHIM, $TSMIGRATE_STREAMER or $TSMIGRATE_STAGING.
 */
export interface Tools {
  /** where CRIU is looked for: $TSMIGRATE_CRIU, else PATH (criu/binary.ts) */
  readonly criu: CriuSearch;
  /** $TSMIGRATE_STAGING: where images are staged instead of the default (checkpoint/staging.ts) */
  readonly staging: string | undefined;
  /** the container supervisor, tsm-shim (may be missing: shim/locate.ts says so) */
  readonly shim: string;
  /** the image streamer, tsm-streamer (may be missing: transfer/streamer-process.ts says so) */
  readonly streamer: string;
}

const nativeBin = (name: string) => path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../native/bin', name);

export function resolveTools(env: NodeJS.ProcessEnv): Tools {
  return Object.freeze({
    criu: Object.freeze({ TSMIGRATE_CRIU: env['TSMIGRATE_CRIU'], PATH: env['PATH'] }),
    staging: env['TSMIGRATE_STAGING'] || undefined,
    shim: env['TSMIGRATE_SHIM'] || nativeBin('tsm-shim'),
    streamer: env['TSMIGRATE_STREAMER'] || nativeBin('tsm-streamer'),
  });
}
