import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'node:net';
import type { CriuWatch } from '../criu/watchdog.js';
import { TsmError } from '../errors/errors.js';
import { shimPath } from './locate.js';

/**
 * The CLI's side of the tsm-shim handshake (see native/shim/run.c, restore.c):
 *   run:     shim -> "stdio pipe:[A] pipe:[B]", "pid N"; CLI -> "go" | "abort"; shim -> "ok" | "err MESSAGE".
 *   restore: shim -> "stdio pipe:[A] pipe:[B]", "criu C"; then "pid N", "ok" | "err MESSAGE".
 * With --tty there is no "stdio" line (a pty's key is read from the init).
 * The shim outlives the CLI: once the handshake is over it is unref'd.
 */
export interface ShimHandle {
  readonly shimPid: number;
  readonly initPid: number;
  /** the pipes the shim handed the container as stdout and stderr (what a restore hands over); none with --tty */
  readonly stdio: { stdout: string; stderr: string } | undefined;
  /** Let the container start; resolves when its command was exec'd. */
  go(): Promise<void>;
  /** Give up before go: the shim kills the init and exits. */
  abort(): Promise<void>;
}

class LineReader {
  private buf = '';
  private lines: string[] = [];
  private waiters: Array<(l: string | null) => void> = [];
  private closed = false;
  constructor(sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', end);
  }
  private push(l: string) {
    const w = this.waiters.shift();
    if (w) w(l);
    else this.lines.push(l);
  }
  /** the next line, or null at the end or after timeoutMs (undefined: no limit) */
  next(timeoutMs: number | undefined): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = timeoutMs === undefined ? undefined : setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(null);
      }, timeoutMs);
      const done = (v: string | null) => {
        clearTimeout(t);
        resolve(v);
      };
      this.waiters.push(done);
    });
  }
}

async function shimLogTail(stateDir: string): Promise<string> {
  const text = await fs.readFile(path.join(stateDir, 'shim.log'), 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ');
}

function detach(child: ChildProcess, sock: Socket) {
  sock.destroy();
  child.unref();
}

export interface StartShimOptions {
  /** how long to wait for each answer of the handshake (default 30 s) */
  timeoutMs?: number;
  /**
   * restore: called with CRIU's pid (also its process group) once it runs;
   * the shim's answer is then awaited for as long as CRIU takes, unless the
   * watch fires (it has killed CRIU; the shim then kills what CRIU had
   * restored and answers "err"). Without it, timeoutMs applies.
   */
  watchCriu?: (pid: number) => CriuWatch;
}

/** After the watchdog killed CRIU: how long the shim may take to kill what was restored and answer. */
const AFTER_KILL_MS = 10_000;

/** "stdio pipe:[A] pipe:[B]" */
export function parseStdioLine(line: string | null): { stdout: string; stderr: string } | undefined {
  const m = /^stdio (pipe:\[\d+\]) (pipe:\[\d+\])$/.exec(line ?? '');
  return m ? { stdout: m[1]!, stderr: m[2]! } : undefined;
}

/** Start tsm-shim (at `shim`, Runtime.tools.shim) in `mode` ("run" or "restore"); resolves once it reported the init's pid. */
export async function startShim(shim: string, mode: 'run' | 'restore', args: string[], stateDir: string, o: StartShimOptions = {}): Promise<ShimHandle> {
  const timeoutMs = o.timeoutMs ?? 30000;
  const child = spawn(shimPath(shim), [mode, '--state-dir', stateDir, '--sync-fd', '3', ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  const sock = child.stdio[3] as Socket;
  const reader = new LineReader(sock);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const fail = async (what: string): Promise<never> => {
    detach(child, sock);
    const tail = await shimLogTail(stateDir);
    throw new TsmError('ESHIM', `the container supervisor failed ${what}${tail ? `: ${tail}` : ''}`, {
      fix: `see ${path.join(stateDir, 'shim.log')}`,
    });
  };
  const refused = (line: string) => {
    detach(child, sock);
    return new TsmError('ESHIM', `${mode === 'run' ? 'the container failed to start' : 'restore failed'}: ${line.slice(4)}`);
  };
  const first = await Promise.race([reader.next(timeoutMs), spawnError]);
  if (first instanceof Error) return fail(`to start (${first.message})`);
  const stdio = parseStdioLine(first);
  const next = stdio ? await reader.next(timeoutMs) : first;
  if (next === null) return fail('before reporting a pid');
  if (next.startsWith('err ')) throw refused(next);

  let watch: CriuWatch | undefined;
  if (mode === 'restore') {
    const criu = /^criu (\d+)$/.exec(next);
    if (!criu) return fail(`before reporting CRIU's pid (${next})`);
    watch = o.watchCriu?.(Number(criu[1]));
  }
  const pidLine = mode === 'run' ? next : watch
    ? await Promise.race([reader.next(undefined), watch.expired.then(() => null)])
    : await reader.next(timeoutMs);
  if (watch?.fired()) {
    // CRIU was killed: the shim kills what it had restored, answers and exits
    await reader.next(AFTER_KILL_MS);
    detach(child, sock);
    throw new TsmError('ECRIU', 'criu restore was stopped by its watchdog', { fix: 'see the restore log' });
  }
  watch?.stop();
  if (pidLine === null) return fail('before reporting a pid');
  if (pidLine.startsWith('err ')) throw refused(pidLine);
  const m = /^pid (\d+)$/.exec(pidLine);
  if (!m) return fail(`with an unexpected message "${pidLine}"`);
  const initPid = Number(m[1]);
  const shimPid = child.pid ?? -1;

  if (mode === 'restore') {
    // restore mode reports "pid N" then "ok" without a go
    const ok = await reader.next(timeoutMs);
    detach(child, sock);
    if (ok !== 'ok') throw new TsmError('ESHIM', `restore failed: ${ok?.replace(/^err /, '') ?? 'no answer'}`);
  }

  return {
    shimPid,
    initPid,
    stdio,
    go: async () => {
      sock.write('go\n');
      const r = await reader.next(timeoutMs);
      detach(child, sock);
      if (r === 'ok') return;
      if (r?.startsWith('err ')) {
        throw new TsmError('ESHIM', `the container failed to start: ${r.slice(4)}`, {
          fix: 'check the command, --workdir and --user exist in the image',
        });
      }
      await fail('after go');
    },
    abort: async () => {
      sock.write('abort\n');
      await new Promise((r) => setTimeout(r, 20));
      detach(child, sock);
    },
  };
}
