import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors/errors.js';

/** The tsm-shim binary: $TSMIGRATE_SHIM, else native/bin/tsm-shim in this checkout. */
export function shimPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env['TSMIGRATE_SHIM'];
  const here = path.dirname(fileURLToPath(import.meta.url));
  const p = fromEnv ?? path.resolve(here, '../../../native/bin/tsm-shim');
  if (!existsSync(p)) {
    throw new TsmError('ESHIM', `the container supervisor is not built (${p} is missing)`, {
      fix: 'run scripts/setup.sh or npm run build:native',
    });
  }
  return p;
}
