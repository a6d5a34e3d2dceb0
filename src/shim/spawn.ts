import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'node:net';
import { TsmError } from '../errors/errors.js';
import { shimPath } from './locate.js';

/**
 * The CLI's side of the tsm-shim handshake (see native/shim/run.c):
 *   shim -> "pid N"; CLI -> "go" | "abort"; shim -> "ok" | "err MESSAGE".
 * The shim outlives the CLI: once the handshake is over it is unref'd.
 */
export interface ShimHandle {
  readonly shimPid: number;
  readonly initPid: number;
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
  next(timeoutMs: number): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
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

/** Start tsm-shim in `mode` ("run" or "restore"); resolves once it reported the init's pid. */
export async function startShim(mode: 'run' | 'restore', args: string[], stateDir: string, timeoutMs = 30000): Promise<ShimHandle> {
  const child = spawn(shimPath(), [mode, '--state-dir', stateDir, '--sync-fd', '3', ...args], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  const sock = child.stdio[3] as Socket;
  const reader = new LineReader(sock);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const first = await Promise.race([reader.next(timeoutMs), spawnError]);
  const fail = async (what: string): Promise<never> => {
    detach(child, sock);
    const tail = await shimLogTail(stateDir);
    throw new TsmError('ESHIM', `the container supervisor failed ${what}${tail ? `: ${tail}` : ''}`, {
      fix: `see ${path.join(stateDir, 'shim.log')}`,
    });
  };
  if (first instanceof Error) return fail(`to start (${first.message})`);
  if (first === null) return fail('before reporting a pid');
  if (first.startsWith('err ')) {
    detach(child, sock);
    throw new TsmError('ESHIM', `the container failed to start: ${first.slice(4)}`);
  }
  const m = /^pid (\d+)$/.exec(first);
  if (!m) return fail(`with an unexpected message "${first}"`);
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
