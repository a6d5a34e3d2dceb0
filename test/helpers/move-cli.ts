import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, FAULT_CLI } from './cli.js';
import { jsonLines } from './json-lines.js';

export interface MoveCliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** the progress phases seen, in order */
  phases: string[];
}

/**
 * Run tsmigrate with `args` (e.g. `--json move NAME HOST`) against state root
 * `root`; onEvent sees each progress line (with the child, to interrupt it);
 * `fault`: the source's test seam of that name (fault-cli.ts).
 */
export function moveCli(
  root: string,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; fault?: string; onEvent?: (e: { phase: string }, child: ChildProcess) => void } = {},
): Promise<MoveCliResult> {
  return new Promise((resolve) => {
    const entry = o.fault ? [FAULT_CLI, '--fault', o.fault] : [CLI];
    const child = spawn(process.execPath, [...entry, '--root', root, ...args], { env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    const phases: string[] = [];
    const stdout = jsonLines(child.stdout, (e) => {
      if (e?.event === 'progress' && e.phase) {
        phases.push(e.phase);
        o.onEvent?.({ phase: e.phase }, child);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: stdout(), stderr, phases }));
  });
}

/** The report of a successful `--json move`. */
export function moveReport<T = Record<string, unknown>>(stdout: string): T | undefined {
  for (const l of stdout.trim().split('\n')) {
    try {
      const e = JSON.parse(l) as { event?: string; report?: T };
      if (e.event === 'done') return e.report;
    } catch {
      /* not json */
    }
  }
  return undefined;
}
