import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { TsmError } from '../errors/errors.js';

/**
 * The freeze watchdog of a move, as seen by the process that moves: a
 * detached guard process (its own session, so a signal to the mover's group
 * does not reach it) reading a pipe from the mover. release() writes DONE and
 * closes the pipe; an end of file without it means the mover died. Either way
 * the guard then looks at the move's journal and, under the container's lock,
 * finishes or undoes what the mover left (source-guard.ts): a container frozen
 * by a dead mover runs again within seconds, unless the move was decided.
 */
export interface FreezeGuard {
  release(): Promise<void>;
}

export interface FreezeGuardOptions {
  migrationId: string;
  /** the guard's argv: the CLI's `guard-move` (built by the composition root) */
  argv: readonly string[];
  /** where the guard's stderr goes (it outlives the mover's terminal) */
  logFile: string;
  /** how long the guard may take to start before the move is refused */
  readyTimeoutMs?: number;
}

export const GUARD_READY = 'ready\n';
const DONE = 'd';

export async function startFreezeGuard(o: FreezeGuardOptions): Promise<FreezeGuard> {
  const [file, ...args] = o.argv;
  if (!file) throw new TsmError('EINVAL_ARG', 'startFreezeGuard: empty argv', { fix: 'pass the guard command' });
  const log = openSync(o.logFile, 'a', 0o600);
  let child;
  try {
    child = spawn(file, args, { detached: true, stdio: ['pipe', 'pipe', log] });
  } finally {
    closeSync(log);
  }
  child.on('error', () => undefined);
  const stdin = child.stdin!;
  const stdout = child.stdout!;
  const ready = await waitReady(stdout, o.readyTimeoutMs ?? 15000).catch((e: Error) => e);
  stdout.destroy();
  if (ready instanceof Error) {
    child.kill('SIGKILL');
    stdin.destroy();
    throw new TsmError('EINTERNAL', `the freeze watchdog of move ${o.migrationId} did not start: ${ready.message}`, {
      fix: `nothing was frozen; see ${o.logFile} and retry`,
      cause: ready,
    });
  }
  // the guard outlives us: neither it nor the pipe keeps this process alive
  child.unref();
  (stdin as unknown as { unref?: () => void }).unref?.();
  stdin.on('error', () => undefined);
  let released: Promise<void> | undefined;
  return {
    release: () =>
      (released ??= new Promise<void>((resolve) => {
        if (stdin.destroyed) return resolve();
        stdin.once('close', () => resolve());
        stdin.end(DONE, () => resolve());
      })),
  };
}

function waitReady(out: Readable, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = '';
    const t = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const done = (e?: Error) => {
      clearTimeout(t);
      out.off('data', onData);
      out.off('close', onEnd);
      if (e) reject(e);
      else resolve();
    };
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.startsWith(GUARD_READY)) done();
    };
    const onEnd = () => done(new Error('it exited'));
    out.on('data', onData);
    out.on('close', onEnd);
  });
}

/** The guard's side: say ready, then wait for the mover to let go; true when it said it was done, false when it died. */
export async function awaitMover(stdin: Readable, stdout: NodeJS.WritableStream): Promise<boolean> {
  await new Promise<void>((resolve) => stdout.write(GUARD_READY, () => resolve()));
  let said = '';
  for await (const chunk of stdin) said += chunk.toString();
  return said.includes(DONE);
}
