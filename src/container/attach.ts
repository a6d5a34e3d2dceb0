import { spawn } from 'node:child_process';
import type { Runtime } from '../runtime/context.js';
import { shimPath } from '../shim/locate.js';
import { TsmError } from '../errors/errors.js';
import { loadView } from './view.js';

/** tsm-shim attach's exit codes (ATTACH_NO_CONSOLE, ATTACH_DETACHED in native/shim/shim.h). */
const NO_CONSOLE = 3;
const DETACHED = 4;

/** Pure: the tsm-shim attach argv. */
export function shimAttachArgs(stateDir: string, interactive: boolean): string[] {
  return ['attach', '--state-dir', stateDir, ...(interactive ? ['--interactive'] : [])];
}

/**
 * Put the caller's terminal on the terminal of a container run with -t (tsm-shim attach relays it:
 * output, input with -i, window size). Resolves 'ended' when the supervisor closes the connection,
 * which it does when the container's init is gone, 'detached' when the caller pressed Ctrl-P Ctrl-Q,
 * or 'gone' when no supervisor listened any more (a command that ended before the attach: its output
 * is in the log).
 */
export async function attachTerminal(rt: Runtime, name: string, interactive: boolean): Promise<'ended' | 'detached' | 'gone'> {
  const view = await loadView(rt, name);
  if (!view.config.tty) {
    throw new TsmError('EINVAL_ARG', `${name} has no terminal to attach to`, { fix: `run it with -t, or read its output with tsmigrate logs ${name}` });
  }
  const child = spawn(shimPath(rt.tools.shim), shimAttachArgs(rt.paths.container(name), interactive), { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  if (code === NO_CONSOLE) return 'gone';
  if (code === DETACHED) return 'detached';
  if (code !== 0) throw new TsmError('ESHIM', `could not attach to the terminal of ${name}`, { fix: `its output is in tsmigrate logs ${name}` });
  return 'ended';
}
