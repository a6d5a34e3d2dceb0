import { spawn } from 'node:child_process';
import type { Runtime } from '../runtime/context.js';
import { shimPath } from '../shim/locate.js';
import { TsmError } from '../errors/errors.js';

/** tsm-shim attach's exit code when no supervisor listens on attach.sock (ATTACH_NO_CONSOLE in shim.h). */
const NO_CONSOLE = 3;

/** Pure: the tsm-shim attach argv. */
export function shimAttachArgs(stateDir: string, interactive: boolean): string[] {
  return ['attach', '--state-dir', stateDir, ...(interactive ? ['--interactive'] : [])];
}

/**
 * Put the caller's terminal on the terminal of a container run with -t (tsm-shim attach relays it:
 * output, input with -i, window size). Resolves 'detached' when the supervisor closes the connection,
 * which it does when the container's init is gone, or 'gone' when no supervisor listened any more (a
 * command that ended before the attach: its output is in the log).
 */
export async function attachTerminal(rt: Runtime, name: string, interactive: boolean): Promise<'detached' | 'gone'> {
  const config = await rt.store.config(name); // ENOENT_CONTAINER if unknown
  if (!config.tty) {
    throw new TsmError('EINVAL_ARG', `${name} has no terminal to attach to`, { fix: `run it with -t, or read its output with tsmigrate logs ${name}` });
  }
  const child = spawn(shimPath(), shimAttachArgs(rt.paths.container(name), interactive), { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  if (code === NO_CONSOLE) return 'gone';
  if (code !== 0) throw new TsmError('ESHIM', `could not attach to the terminal of ${name}`, { fix: `its output is in tsmigrate logs ${name}` });
  return 'detached';
}
