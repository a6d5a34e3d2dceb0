import { execFile } from 'node:child_process';
import path from 'node:path';
import { CLI, REPO } from './cli.js';

const DRIVER = path.join(REPO, 'test/fixtures/pty-session.py');

/** What test/fixtures/pty-session.py reports. */
export interface Session {
  ok: boolean;
  failed: unknown;
  /** what the terminal showed */
  transcript: string;
  exit: number;
  /** input left queued on the terminal after the command: what its shell would read next */
  pending: string;
  termiosRestored: boolean;
  /** the terminal's path on the host */
  tty: string;
}

export type Step = { send: string } | { expect: string; timeout?: number } | { resize: [number, number] } | { sleep: number };

/** Runs argv as a person at a terminal would: a real pty, the command leading a session with it as controlling terminal. */
export function atTerminal(steps: Step[], argv: string[], opts: string[] = []): Promise<Session> {
  return new Promise((resolve, reject) => {
    execFile('python3', [DRIVER, JSON.stringify(steps), ...opts, '--', ...argv], { timeout: 60000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Session);
    });
  });
}

/** The argv of the real CLI against a state root. */
export const tsmAt =
  (root: string) =>
  (...args: string[]): string[] => [process.execPath, CLI, '--root', root, ...args];

/**
 * A person at an interactive shell started in a 37x111 terminal (pass SHELL_SIZE to atTerminal): asks
 * for the terminal's name and size, interrupts a sleep with Ctrl-C, checks the shell survived, resizes
 * the terminal to 50x150 and asks again, and leaves with exit 7.
 */
export const SHELL_SIZE = ['--rows', '37', '--cols', '111'];
export const SHELL_SESSION: Step[] = [
  { expect: '# ' },
  { send: 'tty; stty size\r' },
  { expect: '/dev/pts/\\d+\\r\\n37 111\\r\\n' },
  { send: 'sleep 100\r' },
  { sleep: 0.5 },
  { send: '\x03' },
  // the arithmetic tells the shell's answer from the echo of the typed line
  { send: 'echo alive-$((6*7))\r' },
  { expect: 'alive-42', timeout: 5 },
  { resize: [50, 150] },
  { send: 'stty size\r' },
  { expect: '50 150\\r\\n' },
  { send: 'exit 7\r' },
];
