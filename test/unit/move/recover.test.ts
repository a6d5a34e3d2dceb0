/**
 * Recovery after a crash of the source at every phase, with the peer
 * reachable, unreachable, or having given its held copy up: the machine's
 * promise is exactly one running copy, or none only with a journal that says
 * where the container is and what to run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MoveJournal } from '../../../src/move/journal.js';
import { isDecided, isFinal, isFrozen, SOURCE_TRANSITIONS, type PeerPhase, type SourcePhase } from '../../../src/move/phases.js';
import { recoverWith } from '../../../src/move/recover.js';
import { rig, runningCopies, type Rig } from '../../helpers/move-fakes.js';

const CHAIN: SourcePhase[] = ['started', 'preflight-ok', 'begun', 'upper-sent', 'frozen', 'dumped', 'sent', 'prepared', 'decided', 'committed'];

/** The state a crash in `phase` leaves on both sides. */
async function crashedAt(phase: SourcePhase): Promise<Rig> {
  const r = await rig();
  const path = phase === 'abort-pending' ? [...CHAIN.slice(1, CHAIN.indexOf('frozen') + 1), 'abort-pending' as const] : CHAIN.slice(1, CHAIN.indexOf(phase) + 1);
  for (const p of path) await r.journal.append(p);
  const id = r.req.id;
  const at = (p: SourcePhase) => CHAIN.indexOf(phase) >= CHAIN.indexOf(p);
  let peer: PeerPhase | undefined;
  if (phase === 'abort-pending') peer = 'receiving';
  else if (at('committed')) peer = 'committed';
  else if (at('prepared')) peer = 'prepared';
  else if (at('upper-sent')) peer = 'receiving';
  else if (at('begun')) peer = 'begun';
  if (peer) r.peer.records.set(id, peer);
  r.source.frozen = isFrozen(phase);
  return r;
}

const deps = (r: Rig) => ({
  connectTo: r.peer.connect,
  lock: <T>(_n: string, f: () => Promise<T>) => f(),
  copy: { runAgain: async () => r.source.thaw(), remove: async () => r.source.removeCopy() },
  timing: { callMs: 200, commitMs: 300 },
});
const recover = async (r: Rig) => recoverWith(deps(r), await MoveJournal.load(r.journal.file));

const PHASES = (Object.keys(SOURCE_TRANSITIONS) as SourcePhase[]).filter((p) => !isFinal(p));

for (const phase of PHASES) {
  test(`a crash at ${phase}, the peer reachable: recover converges to exactly one running copy and a final journal`, async () => {
    const r = await crashedAt(phase);
    const a = await recover(r);
    const j = await MoveJournal.load(r.journal.file);
    assert.ok(isFinal(j.phase), `journal final, not ${j.phase}`);
    assert.equal(runningCopies(r), 1, `one running copy (${a.action}: ${a.detail})`);
    assert.equal(r.peer.heldCopies, 0, 'nothing held on the peer');
    if (isDecided(phase)) {
      assert.equal(a.action, 'completed');
      assert.equal(r.peer.runningCopies, 1, 'it runs on the peer');
      assert.equal(r.source.removed, true);
    } else {
      assert.equal(a.action, 'rolled back');
      assert.equal(r.source.running, true, 'it runs on the source');
    }
  });

  test(`a crash at ${phase}, the peer unreachable: never two copies; none only with a journal saying what to do`, async () => {
    const r = await crashedAt(phase);
    r.peer.unreachable = true;
    const a = await recover(r);
    const j = await MoveJournal.load(r.journal.file);
    assert.ok(runningCopies(r) <= 1, 'never two');
    if (runningCopies(r) === 0) {
      assert.ok(isDecided(j.phase) && !isFinal(j.phase), `frozen only with a decided, open journal (${j.phase})`);
      assert.equal(a.action, 'waiting');
      assert.match(a.detail, /run recover again/);
    } else if (!isDecided(phase)) {
      assert.equal(j.phase, 'abort-pending', 'the abort stays pending');
    }
    // once the peer answers, a second recover converges
    r.peer.unreachable = false;
    await recover(r);
    assert.equal(runningCopies(r), 1);
    assert.ok(isFinal((await MoveJournal.load(r.journal.file)).phase));
    assert.equal(r.peer.heldCopies, 0);
  });
}

test('a crash after the decision, the peer having given its held copy up (hold limit): the source copy runs again', async () => {
  const r = await crashedAt('decided');
  r.peer.expire(r.req.id);
  const a = await recover(r);
  assert.equal(a.action, 'rolled back');
  assert.equal(r.source.running, true);
  assert.equal(runningCopies(r), 1);
  assert.equal((await MoveJournal.load(r.journal.file)).phase, 'aborted');
});

test('the journal refuses a transition the table does not list', async () => {
  const r = await rig();
  await r.journal.append('preflight-ok');
  await assert.rejects(r.journal.append('decided'), /no transition from preflight-ok to decided/);
  await assert.rejects(r.journal.append('done'), /no transition/);
});
