/**
 * The held copy's time limit (src/agent/hold.ts): the pure rules, the
 * protocol's bounds, and the expiry against a commit on a real state root
 * (a temp dir: records, the container's lock), with nothing restored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_HOLD_MS } from '../../../src/agent/api.js';
import { expireIfDue, guardHold, holdExpired, holdRemainingMs, holdUntil } from '../../../src/agent/hold.js';
import { MigrationRecords, type IncomingMigration } from '../../../src/agent/migrations.js';
import { agentSpec } from '../../../src/agent/schema.js';
import { LocalAgent } from '../../../src/agent/server.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { acquireLock } from '../../../src/state/lock.js';
import { MID, beginReq } from './helpers.js';

const T0 = new Date('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

test('holdUntil: the default limit, or the one the source asked for', () => {
  assert.equal(holdUntil(T0, undefined), at(DEFAULT_HOLD_MS).toISOString());
  assert.equal(DEFAULT_HOLD_MS, 120_000);
  assert.equal(holdUntil(T0, 2500), '2026-01-01T00:00:02.500Z');
});

test('holdExpired and holdRemainingMs: only a prepared copy past its limit', () => {
  const until = at(5000).toISOString();
  const rows: Array<[IncomingMigration['phase'], string | undefined, number, boolean, number | undefined]> = [
    ['prepared', until, 4999, false, 1],
    ['prepared', until, 5000, true, 0],
    ['prepared', until, 90000, true, 0],
    ['prepared', undefined, 90000, false, undefined], // a record of an older agent: waits for recover on the source
    ['committed', until, 90000, false, undefined],
    ['aborted', until, 90000, false, undefined],
    ['receiving', until, 90000, false, undefined],
  ];
  for (const [phase, holdUntil, now, expired, remaining] of rows) {
    const m = { phase, ...(holdUntil ? { holdUntil } : {}) };
    assert.equal(holdExpired(m, at(now)), expired, `${phase} ${holdUntil} at +${now}`);
    assert.equal(holdRemainingMs(m, at(now)), remaining, `${phase} ${holdUntil} at +${now}`);
  }
  assert.equal(holdRemainingMs(undefined, T0), undefined);
});

test('the protocol carries the hold limit within 1 s .. 1 h', () => {
  assert.equal(agentSpec.begin.params({ ...beginReq, holdMs: 5000 }).holdMs, 5000);
  assert.equal(agentSpec.begin.params(beginReq).holdMs, undefined);
  for (const bad of [500, 4_000_000, -1, '60']) {
    assert.throws(() => agentSpec.begin.params({ ...beginReq, holdMs: bad }), /holdMs/, String(bad));
  }
});

function peerRoot() {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-hold-'));
  const rt = createRuntime({ root });
  const records = new MigrationRecords(rt.paths);
  const agent = new LocalAgent(rt, 'test');
  const held = async (untilMs: number, id = MID) => {
    const m: IncomingMigration = { id, name: 'web-1', epoch: 3, phase: 'prepared', begin: beginReq, received: { upper: [] }, holdUntil: new Date(Date.now() + untilMs).toISOString(), updatedAt: '' };
    await records.save(m);
  };
  return { root, rt, records, agent, held, done: () => rmSync(root, { recursive: true, force: true }) };
}

test('past its limit the copy is aborted (reason expired) and a commit then is refused with EMIGRATION_ABORTED', async () => {
  const p = peerRoot();
  try {
    await p.held(-1);
    assert.equal(await expireIfDue(p.rt, p.records, MID, (m, r) => p.agent.abortLocked(m, r)), true);
    const m = await p.records.must(MID);
    assert.deepEqual([m.phase, m.reason], ['aborted', 'expired']);
    await assert.rejects(p.agent.commit({ migrationId: MID }), (e: Error) => isTsmError(e, 'EMIGRATION_ABORTED') && /expired/.test(e.message));
    // an abort of an aborted migration is fine (the source's late abort)
    assert.deepEqual(await p.agent.abort({ migrationId: MID }), { ok: true });
  } finally {
    p.done();
  }
});

test('before its limit nothing happens', async () => {
  const p = peerRoot();
  try {
    await p.held(60_000);
    assert.equal(await expireIfDue(p.rt, p.records, MID, () => assert.fail('aborted early')), false);
    assert.equal((await p.records.must(MID)).phase, 'prepared');
  } finally {
    p.done();
  }
});

test('the expiry waits for the container lock (a commit under way) and then acts on the record as it is', async () => {
  const p = peerRoot();
  try {
    await p.held(-1);
    // a commit holds the lock and commits meanwhile: the expiry then finds nothing held
    const lock = await acquireLock(p.rt.store.lockDir('web-1'), 'container web-1');
    const expiry = expireIfDue(p.rt, p.records, MID, () => assert.fail('expired a committed copy'));
    await new Promise((r) => setTimeout(r, 200));
    const m = await p.records.must(MID);
    await p.records.save({ ...m, phase: 'committed' });
    await lock.release();
    assert.equal(await expiry, false);
    assert.equal((await p.records.must(MID)).phase, 'committed');
  } finally {
    p.done();
  }
});

test('a commit during the expiry waits for it and is refused', async () => {
  const p = peerRoot();
  try {
    await p.held(-1);
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const expiry = expireIfDue(p.rt, p.records, MID, async (m, r) => {
      await slow;
      await p.agent.abortLocked(m, r);
    });
    await new Promise((r) => setTimeout(r, 50));
    const commit = p.agent.commit({ migrationId: MID }).then(() => 'committed', (e: Error) => (isTsmError(e, 'EMIGRATION_ABORTED') ? 'refused' : e.message));
    await new Promise((r) => setTimeout(r, 200));
    release();
    assert.equal(await expiry, true);
    assert.equal(await commit, 'refused');
  } finally {
    p.done();
  }
});

test('the hold guard sleeps until the limit, expires the copy, and exits; a decided migration ends it early', async () => {
  const p = peerRoot();
  try {
    await p.held(300);
    const t0 = Date.now();
    assert.equal(await guardHold(p.rt, p.records, MID, (m, r) => p.agent.abortLocked(m, r)), 'aborted');
    assert.ok(Date.now() - t0 >= 290, 'not before the limit');
    const MID2 = `${MID}-2`;
    await p.held(60_000, MID2);
    const guard = guardHold(p.rt, p.records, MID2, () => assert.fail('expired a committed copy'), { sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))) });
    await p.records.save({ ...(await p.records.must(MID2)), phase: 'committed' });
    assert.equal(await guard, 'committed');
  } finally {
    p.done();
  }
});
