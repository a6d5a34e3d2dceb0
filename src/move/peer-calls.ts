import { PROTOCOL_VERSION } from '../agent/api.js';
import { TsmError } from '../errors/errors.js';
import { completionFrom, type PeerPhase } from './phases.js';
import type { PeerConnection } from './report.js';

export const HELLO = { protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '1' } as const;

export async function withTimeout<T>(p: Promise<T>, ms: number, what = 'the peer'): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<T>((_r, rej) => (t = setTimeout(() => rej(new TsmError('EHOST_UNREACHABLE', `${what} did not answer within ${Math.round(ms / 1000)} s`, { fix: 'check the peer, then run tsmigrate recover' })), ms))),
    ]);
  } finally {
    if (t) clearTimeout(t);
  }
}

/**
 * connect() within `ms`. A connection that arrives after the timeout is closed
 * as it arrives: left open, it would keep this process alive after the move
 * gave up (and with it the freeze watchdog waiting for the process to end).
 */
export async function connectWithin(connect: () => Promise<PeerConnection>, ms: number): Promise<PeerConnection> {
  const pending = connect();
  try {
    return await withTimeout(pending, ms);
  } catch (e) {
    pending.then((late) => late.close().catch(() => undefined), () => undefined);
    throw e;
  }
}

/** A call given up when the signal aborts (the call itself may still finish on the peer). */
export async function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_r, rej) => signal.addEventListener('abort', (onAbort = () => rej(signal.reason as Error)), { once: true }))]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/** Tell the peer to remove what it made; over a new connection if the old one is gone. True when the peer confirmed. */
export async function abortOnPeer(conn: PeerConnection | undefined, connect: () => Promise<PeerConnection>, id: string, timeoutMs: number): Promise<boolean> {
  if (conn) {
    const ok = await withTimeout(conn.agent.abort({ migrationId: id }), timeoutMs).then(() => true, () => false);
    if (ok) return true;
  }
  for (let i = 0; i < 2; i++) {
    const c = await connectWithin(connect, timeoutMs).catch(() => undefined);
    if (!c) continue;
    try {
      await withTimeout(c.agent.hello(HELLO), timeoutMs);
      await withTimeout(c.agent.abort({ migrationId: id }), timeoutMs);
      return true;
    } catch {
      /* try again */
    } finally {
      await c.close().catch(() => undefined);
    }
  }
  return false;
}

export type CommitOutcome = 'committed' | 'peer-gave-up';

/**
 * Ask the peer to resume its held copy, until it confirms or the deadline:
 * after a failed commit the peer's record says what happened (committed
 * after all, still prepared: try again, or aborted: it gave its copy up and
 * the source's copy must run again). Past the deadline the move is left to
 * recover (and the freeze guard), the source copy frozen.
 */
export async function commitOnPeer(conn: PeerConnection, connect: () => Promise<PeerConnection>, id: string, deadlineMs: number, callTimeoutMs: number): Promise<CommitOutcome> {
  const until = performance.now() + deadlineMs;
  /** every wait ends by the deadline (at least a second each, so a late try still gets its answer) */
  const upTo = (ms: number) => Math.min(ms, Math.max(1000, until - performance.now()));
  let first: unknown;
  let c: PeerConnection | undefined = conn;
  for (let attempt = 0; ; attempt++) {
    if (c) {
      try {
        await withTimeout(c.agent.commit({ migrationId: id }), upTo(callTimeoutMs));
        return 'committed';
      } catch (e) {
        first ??= e;
        const st = await withTimeout(c.agent.status({ migrationId: id }), upTo(callTimeoutMs)).catch(() => undefined);
        const said = st ? completionFrom(st.phase as PeerPhase | 'unknown') : undefined;
        if (said === 'committed') return 'committed';
        if (said === 'peer-gave-up') return 'peer-gave-up';
      } finally {
        if (c !== conn) await c.close().catch(() => undefined);
      }
    }
    const left = until - performance.now();
    if (left <= 0) break;
    await new Promise((r) => setTimeout(r, Math.min(left, 250 * 2 ** Math.min(attempt, 4))));
    c = await connectWithin(connect, upTo(deadlineMs)).then(
      async (x) => {
        await withTimeout(x.agent.hello(HELLO), upTo(5000)).catch(async (e: unknown) => {
          await x.close().catch(() => undefined);
          throw e;
        });
        return x;
      },
      () => undefined,
    ).catch(() => undefined);
  }
  throw first instanceof Error ? first : new TsmError('EHOST_UNREACHABLE', 'the peer did not confirm the commit', { fix: 'run tsmigrate recover' });
}
