import { existsSync } from 'node:fs';
import { TsmError } from '../errors/errors.js';

/** The tsm-shim binary at `shim` (Runtime.tools.shim), or one clear error when it is not built. */
export function shimPath(shim: string): string {
  if (!existsSync(shim)) {
    throw new TsmError('ESHIM', `the container supervisor is not built (${shim} is missing)`, {
      fix: 'run scripts/setup.sh or npm run build:native',
    });
  }
  return shim;
}
