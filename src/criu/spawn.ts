/**
 * CRIU as a child process in its own process group, so that stopping it (a
 * timeout, a cancel, its watchdog) stops whatever it forked too: a CRIU
 * killed alone can leave its helpers, or the tasks it was restoring, behind.
 * Argument arrays only, stdin closed, output captured.
 */
import { execa, type Result } from 'execa';
import { killGroup } from './watchdog.js';

export interface CriuChild {
  /** undefined when it could not be started (the result then says why) */
  readonly pid: number | undefined;
  readonly result: Promise<Result<{ reject: false; encoding: 'utf8'; all: true }>>;
  /** why it was stopped (timeoutMs, signal), if it was */
  stopped(): 'timedOut' | 'cancelled' | undefined;
}

/** Time given to SIGTERM before SIGKILL. */
const GRACE_MS = 5000;

export function spawnCriu(file: string, args: readonly string[], o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; signal?: AbortSignal } = {}): CriuChild {
  const child = execa(file, [...args], {
    reject: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    all: true,
    encoding: 'utf8',
    detached: true,
    ...(o.env !== undefined ? { env: o.env } : {}),
  });
  const pid = child.pid;
  let how: 'timedOut' | 'cancelled' | undefined;
  let grace: NodeJS.Timeout | undefined;
  const stop = (why: 'timedOut' | 'cancelled') => {
    if (how || pid === undefined) return;
    how = why;
    killGroup(pid, 'SIGTERM');
    grace = setTimeout(() => killGroup(pid, 'SIGKILL'), GRACE_MS);
  };
  const timer = o.timeoutMs !== undefined ? setTimeout(() => stop('timedOut'), o.timeoutMs) : undefined;
  const onAbort = () => stop('cancelled');
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  const result = child.then((r) => {
    clearTimeout(timer);
    clearTimeout(grace);
    o.signal?.removeEventListener('abort', onAbort);
    // whatever the group left (a helper CRIU forked) goes too
    if (how && pid !== undefined) killGroup(pid);
    return r;
  });
  return { pid, result, stopped: () => how };
}
