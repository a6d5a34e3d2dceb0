import { LocalAgent } from '../agent/server.js';
import { expireIfDue } from '../agent/hold.js';
import { MigrationRecords } from '../agent/migrations.js';
import { repairLeasesHere } from '../agent/lease-facts.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { recordRecovery } from './history.js';
import { unfinishedMoves, type MoveJournal } from './journal.js';
import { abortOnPeer, commitOnPeer, connectWithin, HELLO, withTimeout } from './peer-calls.js';
import { recoveryFor } from './phases.js';
import type { PeerConnection } from './report.js';
import { removeSourceCopy, runSourceCopyAgain } from './source-copy.js';

export interface RecoverAction {
  migration: string;
  container: string;
  side: 'source' | 'peer';
  action: 'rolled back' | 'completed' | 'waiting' | 'cleaned';
  detail: string;
}

export type ConnectTo = (host: string) => Promise<PeerConnection>;

/** How long recovery waits on a peer: one call, and the commit's retries. */
const DEFAULT_CALL_MS = 15_000;
const DEFAULT_COMMIT_MS = 20_000;

/**
 * Finish or undo moves cut off by a crash, from this host's journals, as
 * phases.ts recoveryFor says: before the decision the move is rolled back (the
 * peer aborts, the local copy runs again), an abort the peer never got is
 * delivered, a decided move is completed (or, where the peer gave its copy
 * up, rolled back), a committed one loses its source copy. As a peer:
 * migrations still receiving (their source is gone) are cleaned up; a
 * prepared one waits for its source's decision.
 */
export async function recoverMoves(rt: Runtime, connectTo: ConnectTo): Promise<RecoverAction[]> {
  const out: RecoverAction[] = [];
  for (const j of await unfinishedMoves(rt.paths)) out.push(await recoverMove(rt, j, connectTo));
  const records = new MigrationRecords(rt.paths);
  const local = new LocalAgent(rt, 'recover');
  for (const m of await records.list()) {
    if (m.phase === 'begun' || m.phase === 'receiving') {
      await local.abort({ migrationId: m.id });
      out.push({ migration: m.id, container: m.name, side: 'peer', action: 'cleaned', detail: 'an incoming move that never completed was removed' });
    } else if (m.phase === 'prepared' && (await expireIfDue(rt, records, m.id, (x, reason) => local.abortLocked(x, reason)))) {
      out.push({ migration: m.id, container: m.name, side: 'peer', action: 'cleaned', detail: `held past its limit (${m.holdUntil}) without a decision from the source: removed` });
    } else if (m.phase === 'prepared') {
      out.push({ migration: m.id, container: m.name, side: 'peer', action: 'waiting', detail: 'restored and held stopped: run tsmigrate recover on the source to decide' });
    }
  }
  out.push(...(await repairLeasesHere(rt)));
  return out;
}

/**
 * Deliver the aborts the peers never got for one container (the next command
 * touching it, the daemon): the container already runs here; only the peer's
 * partial copy is left to remove. Never fails the caller.
 */
export async function settlePendingAborts(rt: Runtime, connectTo: ConnectTo, name?: string): Promise<RecoverAction[]> {
  const out: RecoverAction[] = [];
  for (const j of await unfinishedMoves(rt.paths)) {
    if (j.phase !== 'abort-pending' || (name !== undefined && j.record.name !== name)) continue;
    out.push(await recoverMove(rt, j, connectTo).catch((e: Error) => ({ migration: j.record.id, container: j.record.name, side: 'source' as const, action: 'waiting' as const, detail: e.message })));
  }
  return out;
}

/** One journal, under the container's lock (a move still running holds it: busy). */
export async function recoverMove(rt: Runtime, j: MoveJournal, connectTo: ConnectTo): Promise<RecoverAction> {
  const before = j.phase;
  const a = await recoverWith(
    {
      connectTo,
      lock: (name, fn) => withLock(rt.store.lockDir(name), `container ${name}`, fn),
      copy: { runAgain: (name) => runSourceCopyAgain(rt, name), remove: (name) => removeSourceCopy(rt, name) },
    },
    j,
  );
  const { id, name, host } = j.record;
  await recordRecovery(rt.paths, { id, name, host }, before, j.phase, a);
  return a;
}

/** What recovery does to the source copy, and how it locks it (tests drive recovery with fakes). */
export interface RecoverDeps {
  connectTo: ConnectTo;
  lock: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
  copy: { runAgain(name: string): Promise<void>; remove(name: string): Promise<void> };
  timing?: { callMs: number; commitMs: number };
}

export async function recoverWith(d: RecoverDeps, j: MoveJournal): Promise<RecoverAction> {
  const { id, name, host } = j.record;
  const { connectTo } = d;
  const CALL_MS = d.timing?.callMs ?? DEFAULT_CALL_MS;
  const COMMIT_MS = d.timing?.commitMs ?? DEFAULT_COMMIT_MS;
  return d.lock(name, async () => {
    const act = (action: RecoverAction['action'], detail: string): RecoverAction => ({ migration: id, container: name, side: 'source', action, detail });
    const what = recoveryFor(j.phase);
    if (what === 'none') return act('completed', 'nothing left to do');
    if (what === 'remove-source') {
      await d.copy.remove(name);
      await j.append('done', { by: 'recover' });
      return act('completed', `the container runs on ${host}; the copy here was removed`);
    }
    let conn: PeerConnection | undefined;
    try {
      conn = await connectWithin(() => connectTo(host), CALL_MS).catch(() => undefined);
      if (conn) await withTimeout(conn.agent.hello(HELLO), CALL_MS).catch(async () => {
        await conn?.close().catch(() => undefined);
        conn = undefined;
      });
      if (what === 'rollback' || what === 'retry-abort') {
        // the source first: it must run again whatever the peer does
        if (what === 'rollback') await d.copy.runAgain(name);
        const told = conn ? await abortOnPeer(conn, () => connectTo(host), id, CALL_MS) : false;
        if (!told) {
          if (j.phase !== 'abort-pending') await j.append('abort-pending', { by: 'recover' });
          return act('rolled back', `the container runs here; ${host} is unreachable and still has to remove its partial copy (run recover again)`);
        }
        await j.append('aborted', { by: 'recover' });
        return act('rolled back', `${host} removed its copy; the container runs here`);
      }
      // decided: complete, unless the peer gave its held copy up
      if (!conn) return act('waiting', `decided but ${host} is unreachable: the copy here stays frozen until it answers; run recover again`);
      const outcome = await commitOnPeer(conn, () => connectTo(host), id, COMMIT_MS, CALL_MS);
      if (outcome === 'peer-gave-up') {
        await d.copy.runAgain(name);
        await j.append('aborted', { by: 'recover', error: 'the peer gave its held copy up before the commit' });
        return act('rolled back', `${host} had given its restored copy up: the container runs here again`);
      }
      await j.append('committed', { by: 'recover' });
      await d.copy.remove(name);
      await j.append('done', { by: 'recover' });
      return act('completed', `the container runs on ${host}; the copy here was removed`);
    } finally {
      if (conn) await conn.close().catch(() => undefined);
    }
  });
}
