import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './cli.js';

/** `tsmigrate daemon` for a state root, its log lines appended through `onLog`. */
export function startDaemon(root: string, onLog: (text: string) => void): ChildProcess {
  const child = spawn(process.execPath, [CLI, '--root', root, 'daemon'], { stdio: ['ignore', 'ignore', 'pipe'], env: process.env });
  child.stderr!.setEncoding('utf8').on('data', onLog);
  return child;
}

/** Resolves with the exit code once the process has exited. */
export const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
