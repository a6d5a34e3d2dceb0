import { execa } from 'execa';
import { LocalAgent } from '../agent/server.js';
import { MigrationRecords } from '../agent/migrations.js';
import { PROTOCOL_VERSION } from '../agent/api.js';
import { isSameProcess, waitFor } from '../container/proc.js';
import { releaseResources } from '../container/stop.js';
import { loadView } from '../container/view.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { unfinishedMoves, type MoveJournal } from './journal.js';
import type { PeerConnection } from './move.js';

export interface RecoverAction {
  migration: string;
  container: string;
  side: 'source' | 'peer';
  action: 'rolled back' | 'completed' | 'waiting' | 'cleaned';
  detail: string;
}

/**
 * Finish or undo moves cut off by a crash, from this host's journals. As the
 * source: before `decided` the move is rolled back (the peer aborts, the local
 * copy is thawed); from `decided` on it is completed (the peer commits, then
 * the local copy is removed). As a peer: migrations still receiving (their
 * source is gone) are cleaned up; a prepared one waits for its source's decision.
 */
export async function recoverMoves(rt: Runtime, connectTo: (host: string) => Promise<PeerConnection>): Promise<RecoverAction[]> {
  const out: RecoverAction[] = [];
  for (const j of await unfinishedMoves(rt.paths)) out.push(await recoverOne(rt, j, connectTo));
  const records = new MigrationRecords(rt.paths);
  const local = new LocalAgent(rt, 'recover');
  for (const m of await records.list()) {
    if (m.phase === 'begun' || m.phase === 'receiving') {
      await local.abort({ migrationId: m.id });
      out.push({ migration: m.id, container: m.name, side: 'peer', action: 'cleaned', detail: 'an incoming move that never completed was removed' });
    } else if (m.phase === 'prepared') {
      out.push({ migration: m.id, container: m.name, side: 'peer', action: 'waiting', detail: 'restored and held stopped: run tsmigrate recover on the source to decide' });
    }
  }
  return out;
}

async function recoverOne(rt: Runtime, j: MoveJournal, connectTo: (host: string) => Promise<PeerConnection>): Promise<RecoverAction> {
  const { id, name, host } = j.record;
  return withLock(rt.store.lockDir(name), `container ${name}`, async () => {
    const decided = j.has('decided');
    let conn: PeerConnection | undefined;
    try {
      conn = await connectTo(host).catch(() => undefined);
      if (conn) await conn.agent.hello({ protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '1' });
      if (!decided) {
        if (conn) await conn.agent.abort({ migrationId: id });
        if (await rt.store.exists(name)) {
          const v = await loadView(rt, name);
          const veth = v.state.network?.mode === 'bridge' ? v.state.network.hostVeth : undefined;
          if (veth) await execa('ip', ['link', 'set', veth, 'up']).catch(() => undefined);
          if (v.status === 'frozen') await rt.cgroups(name).thaw();
        }
        await j.append('aborted', { by: 'recover', peerReached: Boolean(conn) });
        return { migration: id, container: name, side: 'source', action: 'rolled back', detail: conn ? 'the peer removed its copy; the container runs here' : `the peer was unreachable; the container runs here (run recover on ${host} too)` };
      }
      if (!conn) {
        return { migration: id, container: name, side: 'source', action: 'waiting', detail: `decided but ${host} is unreachable: the copy here stays frozen; run recover again` };
      }
      await conn.agent.commit({ migrationId: id });
      await j.append('committed', { by: 'recover' });
      if (await rt.store.exists(name)) {
        const v = await loadView(rt, name);
        const cg = rt.cgroups(name);
        await cg.killAll('SIGKILL').catch(() => undefined);
        await cg.thaw().catch(() => undefined);
        await waitFor(async () => !(await isSameProcess(v.state.initPid, v.state.initStartTime)), 10000);
        await releaseResources(rt, name, await loadView(rt, name));
        await rt.store.remove(name);
      }
      await j.append('done', { by: 'recover' });
      return { migration: id, container: name, side: 'source', action: 'completed', detail: `the container runs on ${host}; the copy here was removed` };
    } finally {
      if (conn) await conn.close().catch(() => undefined);
    }
  });
}
