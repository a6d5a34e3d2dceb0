/**
 * The move's state machine driven with a fake source and a fake peer through
 * a failure at every step on both sides, a lost reply, an unreachable peer,
 * the downtime bound, and recovery after a crash at every phase.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTsmError } from '../../../src/errors/errors.js';
import { runMigration } from '../../../src/move/machine.js';
import { MoveJournal } from '../../../src/move/journal.js';
import { isFinal } from '../../../src/move/phases.js';
import { PEER_CALLS, rig, runningCopies, SOURCE_STEPS, type Rig } from '../../helpers/move-fakes.js';

const run = (r: Rig) => runMigration(r.deps, r.req);

/** The journal on disk, as recover reads it. */
async function phaseOnDisk(r: Rig): Promise<string> {
  return (await MoveJournal.load(r.journal.file)).phase;
}

function assertRolledBack(r: Rig, why: string, o: { peerReached?: boolean } = {}): void {
  assert.equal(r.source.running, true, `${why}: the source copy runs`);
  assert.equal(r.source.linkDown, false, `${why}: its link is up`);
  assert.equal(runningCopies(r), 1, `${why}: one running copy`);
  // a peer that cannot be reached keeps what it holds until the abort reaches it (or its hold limit)
  if (o.peerReached !== false) assert.equal(r.peer.heldCopies, 0, `${why}: no copy held on the peer`);
}

test('the happy path: journal through every phase, the peer runs it, the source copy is removed', async () => {
  const r = await rig();
  const rep = await run(r);
  assert.equal(rep.name, 'web');
  assert.deepEqual(r.journal.record.entries.map((e) => e.phase), ['started', 'preflight-ok', 'begun', 'upper-sent', 'frozen', 'dumped', 'sent', 'prepared', 'decided', 'committed', 'done']);
  assert.equal(r.source.removed, true);
  assert.equal(r.peer.runningCopies, 1);
  assert.equal(runningCopies(r), 1);
  assert.ok(rep.estimate.totalMs > 0 && rep.maxDowntimeMs === 30_000);
});

for (const step of SOURCE_STEPS) {
  test(`a failure of the source in ${step}: rolled back, the peer told, journal aborted`, async () => {
    const r = await rig();
    r.source.failAt = step;
    await assert.rejects(run(r), /fake/);
    assertRolledBack(r, step);
    assert.equal(await phaseOnDisk(r), 'aborted');
    assert.ok([...r.peer.records.values()].every((p) => p === 'aborted'), 'every record on the peer aborted');
  });
}

for (const call of PEER_CALLS.filter((c) => c !== 'commit')) {
  test(`the peer failing ${call}: rolled back, journal aborted`, async () => {
    const r = await rig();
    r.peer.failAt = call;
    await assert.rejects(run(r), /fake/);
    assertRolledBack(r, call);
    assert.equal(await phaseOnDisk(r), 'aborted');
  });
  test(`the peer's reply to ${call} lost and the peer unreachable: source runs, the abort is pending, then delivered`, async () => {
    const r = await rig();
    r.peer.replyLostAt = call;
    const e = await run(r).then(() => undefined, (x: Error) => x);
    assert.ok(e, 'the move failed');
    assertRolledBack(r, call, { peerReached: false });
    const begun = r.peer.records.size > 0;
    if (call === 'hello' || call === 'preflight') {
      // nothing was begun there: nothing to tell
      assert.equal(await phaseOnDisk(r), 'aborted');
      return;
    }
    assert.equal(await phaseOnDisk(r), 'abort-pending', 'not told: pending');
    assert.match(e.message, /could not be told/);
    // the peer comes back: recovery delivers the abort
    r.peer.unreachable = false;
    const { recoverWith } = await import('../../../src/move/recover.js');
    const a = await recoverWith({ connectTo: r.peer.connect, lock: (_n, f) => f(), copy: { runAgain: async () => r.source.thaw(), remove: async () => r.source.removeCopy() } }, await MoveJournal.load(r.journal.file));
    assert.equal(a.action, 'rolled back');
    assert.equal(await phaseOnDisk(r), 'aborted');
    if (begun) assert.ok([...r.peer.records.values()].every((p) => p === 'aborted'), 'the partial copy removed');
    assert.equal(runningCopies(r), 1);
  });
}

test('commit failing once then succeeding: committed, exactly one copy', async () => {
  const r = await rig();
  r.peer.failAt = 'commit';
  await run(r);
  assert.equal(r.peer.runningCopies, 1);
  assert.equal(r.source.removed, true);
  assert.equal(await phaseOnDisk(r), 'done');
});

test("commit done but its reply lost, the peer reachable again: the peer's record says committed", async () => {
  const r = await rig({ timing: { commitDeadlineMs: 2000 } });
  r.peer.replyLostAt = 'commit';
  setTimeout(() => (r.peer.unreachable = false), 100);
  await run(r);
  assert.equal(runningCopies(r), 1);
  assert.equal(r.source.removed, true);
});

test('the peer unreachable after the decision: the commit gives up at its deadline, the source stays frozen with a record; recover completes', async () => {
  const r = await rig({ timing: { commitDeadlineMs: 200 } });
  r.peer.replyLostAt = 'prepare';
  // the prepare happened on the peer; the reply is lost: the source rolls back (before the decision)
  await assert.rejects(run(r));
  assertRolledBack(r, 'prepare reply lost', { peerReached: false });
  const r2 = await rig({ timing: { commitDeadlineMs: 200 } });
  const t0 = performance.now();
  const origCommit = r2.peer.api.commit;
  r2.peer.api.commit = async () => {
    r2.peer.unreachable = true;
    return origCommit({ migrationId: 'x' });
  };
  const e = await run(r2).then(() => undefined, (x: Error) => x);
  assert.ok(isTsmError(e, 'EMOVE_UNFINISHED'), String(e));
  assert.ok(performance.now() - t0 < 2000, 'the commit retries have a deadline');
  assert.equal(await phaseOnDisk(r2), 'decided');
  assert.equal(r2.source.frozen, true, 'the source copy stays frozen (not removed, not running)');
  assert.equal(runningCopies(r2), 0);
  assert.equal(r2.peer.heldCopies, 1, 'the peer holds the restored copy');
  // the peer answers again: recover commits
  r2.peer.unreachable = false;
  r2.peer.api.commit = origCommit;
  const { recoverWith } = await import('../../../src/move/recover.js');
  const a = await recoverWith({ connectTo: r2.peer.connect, lock: (_n, f) => f(), copy: { runAgain: async () => r2.source.thaw(), remove: async () => r2.source.removeCopy() } }, await MoveJournal.load(r2.journal.file));
  assert.equal(a.action, 'completed');
  assert.equal(runningCopies(r2), 1);
  assert.equal(r2.source.removed, true);
  assert.equal(await phaseOnDisk(r2), 'done');
});

test('the peer gave its held copy up before the commit (hold limit): the source copy runs again, journal aborted', async () => {
  const r = await rig();
  const origPrepare = r.peer.api.prepare;
  r.peer.api.prepare = async (p) => {
    const x = await origPrepare(p);
    r.peer.expire(p.migrationId);
    return x;
  };
  const e = await run(r).then(() => undefined, (x: Error) => x);
  assert.ok(isTsmError(e, 'EMOVE_ABORTED'), String(e));
  assertRolledBack(r, 'expired');
  assert.equal(await phaseOnDisk(r), 'aborted');
});

test('--max-downtime: an estimate over the bound is refused before the freeze; nothing begun on the peer', async () => {
  const r = await rig({ maxDowntimeMs: 1000 });
  r.source.linkBps = 8e6; // 64 MiB over 8 MB/s: about 8 s
  const e = await run(r).then(() => undefined, (x: Error) => x);
  assert.ok(isTsmError(e, 'EDOWNTIME'), String(e));
  assert.match(e!.message, /about \d+(\.\d)? s .*over the --max-downtime of 1\.0 s/);
  assert.ok(!r.source.calls.includes('freeze'), 'never frozen');
  assert.equal(r.peer.records.size, 0, 'nothing begun on the peer');
  assert.equal(await phaseOnDisk(r), 'aborted');
});

test('--max-downtime: a frozen phase running over the bound is rolled back within it', async () => {
  const r = await rig({ maxDowntimeMs: 300 });
  r.source.hangInDump = true;
  const e = await run(r).then(() => undefined, (x: Error) => x);
  const frozen = r.source.thawedAt - r.source.frozenAt;
  assert.ok(isTsmError(e, 'EDOWNTIME'), String(e));
  assert.ok(frozen > 200 && frozen < 300, `thawed within the bound, after most of it (${Math.round(frozen)} ms frozen)`);
  assertRolledBack(r, 'budget');
  assert.equal(await phaseOnDisk(r), 'aborted');
});

test('an interrupt (signal) at each step: rolled back, shown as the interrupt', async () => {
  for (const step of SOURCE_STEPS) {
    const r = await rig();
    const ac = new AbortController();
    r.req.signal = ac.signal;
    const orig = r.source[step].bind(r.source) as (...a: unknown[]) => Promise<unknown>;
    (r.source as unknown as Record<string, unknown>)[step] = async (...a: unknown[]) => {
      ac.abort(new Error('interrupted (fake)'));
      return orig(...a);
    };
    const e = await run(r).then(() => undefined, (x: Error) => x);
    if (step === 'dumpAndSend') {
      // the fake dump ignores the signal, as CRIU runs to its end: the machine stops after it
      assert.ok(e, step);
    } else assert.equal(e?.message, 'interrupted (fake)', step);
    assertRolledBack(r, `interrupt in ${step}`);
    assert.ok(isFinal(r.journal.phase), `${step}: journal final (${r.journal.phase})`);
  }
});
