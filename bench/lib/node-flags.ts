/**
 * The node flags tsmigrate runs with (scripts/node-flags.sh says why; the same
 * list as there and in src/cli/main.ts's #! line). The move benchmark streams
 * M's source side and T through its own process, so it must run with them as
 * the tsmigrate command does: started without them, it runs itself again with
 * them and exits with that run's status.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';

export const NODE_FLAGS = ['--initial-old-space-size=256'];

/** undefined when this process has the flags; otherwise the exit status of the same script run with them */
export function rerunWithNodeFlags(): Promise<number> | undefined {
  if (NODE_FLAGS.every((f) => process.execArgv.includes(f))) return undefined;
  const script = process.argv[1];
  if (!script) return undefined;
  const child = spawn(process.execPath, [...process.execArgv, ...NODE_FLAGS, script, ...process.argv.slice(2)], { stdio: 'inherit' });
  // a terminal's Ctrl-C reaches the child too (same process group): it cleans up, we wait for it
  const forward = (sig: NodeJS.Signals) => {
    if (child.exitCode === null) child.kill(sig);
  };
  process.on('SIGINT', () => undefined).on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      console.error(`cannot run ${script} again with ${NODE_FLAGS.join(' ')}: ${e.message}`);
      resolve(2);
    });
    child.on('exit', (code, sig) => resolve(code ?? 128 + (sig ? (os.constants.signals[sig] ?? 0) : 0)));
  });
}
