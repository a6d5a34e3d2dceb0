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
