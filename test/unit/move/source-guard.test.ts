/**
 * The freeze watchdog's decision (source-guard.ts guardMove) against fake
 * ports: a journal in memory, a peer that answers as told, a clock that jumps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TsmError } from '../../../src/errors/errors.js';
import type { MovePhase } from '../../../src/move/journal.js';
import type { RecoverAction } from '../../../src/move/recover.js';
import { guardMove, type SourceGuardPorts } from '../../../src/move/source-guard.js';

type Peer = 'up' | 'down' | 'aborted' | 'busy';

/** A fake host: `phases` is the journal; `peer` says how each attempt goes (the last one repeats). */
function fakeHost(phases: MovePhase[], peer: Peer[]) {
  const calls: string[] = [];
  let t = 0;
  let attempt = 0;
  const decided = () => phases.includes('decided');
  const ports: SourceGuardPorts = {
    journal: async () => ({ phase: phases[phases.length - 1]!, decided: decided() }),
    resumeHere: async () => void calls.push('thaw'),
    recover: async (): Promise<RecoverAction> => {
      const how = peer[Math.min(attempt++, peer.length - 1)]!;
      calls.push(`recover:${how}`);
      if (how === 'busy') throw new TsmError('EBUSY', 'container x is busy');
      const base = { migration: 'm', container: 'x', side: 'source' as const, detail: '' };
      if (!decided()) {
        phases.push(how === 'up' ? 'aborted' : 'abort-pending');
        return { ...base, action: 'rolled back' };
      }
      if (how === 'down') return { ...base, action: 'waiting' };
      if (how === 'aborted') {
        // recover.ts: the peer gave its held copy up; the copy here runs again
        calls.push('thaw');
        phases.push('aborted');
        return { ...base, action: 'rolled back' };
      }
      phases.push('committed', 'done');
      return { ...base, action: 'completed' };
    },
    sleep: async (ms) => void (t += ms),
    now: () => t,
    log: () => undefined,
  };
  return { ports, calls, phases, elapsed: () => t };
}

test('the mover finished (done or aborted): the guard does nothing', async () => {
  for (const last of ['done', 'aborted'] as const) {
    const h = fakeHost(['started', 'frozen', last], ['up']);
    assert.deepEqual(await guardMove(h.ports), { outcome: 'nothing to do', phase: last });
    assert.deepEqual(h.calls, []);
  }
});

test('frozen, not decided: thawed first, then the peer aborts; the journal says aborted', async () => {
  for (const at of ['begun', 'upper-sent', 'frozen', 'dumped', 'sent', 'prepared'] as const) {
    const h = fakeHost(['started', 'begun', at], ['up']);
    assert.deepEqual(await guardMove(h.ports), { outcome: 'rolled back', phase: 'aborted' }, at);
    assert.deepEqual(h.calls, ['thaw', 'recover:up'], at);
  }
});

test('not decided, the peer unreachable: thawed once, abort-pending, the abort retried with backoff until delivered', async () => {
  const h = fakeHost(['started', 'frozen'], ['down', 'down', 'down', 'up']);
  assert.deepEqual(await guardMove(h.ports), { outcome: 'rolled back', phase: 'aborted' });
  assert.deepEqual(h.calls, ['thaw', 'recover:down', 'recover:down', 'recover:down', 'recover:up']);
  assert.equal(h.elapsed(), 500 + 1000 + 2000, 'backoff doubles');
  assert.ok(h.phases.includes('abort-pending'));
});

test('not decided, the peer never reachable: the guard gives up at its bound, the journal stays abort-pending (recover takes over)', async () => {
  const h = fakeHost(['started', 'frozen'], ['down']);
  const r = await guardMove(h.ports, { retryForMs: 60_000 });
  assert.deepEqual(r, { outcome: 'gave up', phase: 'abort-pending' });
  assert.equal(h.calls.filter((c) => c === 'thaw').length, 1);
  assert.ok(h.elapsed() >= 60_000 && h.elapsed() < 60_000 + 30_000);
});

test('decided: never thawed; the peer commits and the copy here goes', async () => {
  const h = fakeHost(['started', 'prepared', 'decided'], ['down', 'up']);
  assert.deepEqual(await guardMove(h.ports), { outcome: 'completed', phase: 'done' });
  assert.deepEqual(h.calls, ['recover:down', 'recover:up']);
});

test('decided, the peer unreachable past the bound: still frozen (no thaw), the journal stays decided', async () => {
  const h = fakeHost(['started', 'prepared', 'decided'], ['down']);
  assert.deepEqual(await guardMove(h.ports, { retryForMs: 120_000 }), { outcome: 'gave up', phase: 'decided' });
  assert.ok(!h.calls.includes('thaw'));
});

test('decided, the peer gave its held copy up (its hold expired): recover runs the copy here again, journal aborted', async () => {
  const h = fakeHost(['started', 'prepared', 'decided'], ['down', 'aborted']);
  assert.deepEqual(await guardMove(h.ports), { outcome: 'rolled back', phase: 'aborted' });
  assert.deepEqual(h.calls, ['recover:down', 'recover:aborted', 'thaw']);
});

test('the lock held by a live process: asked again shortly, not backed off', async () => {
  const h = fakeHost(['started', 'prepared', 'decided'], ['busy', 'busy', 'up']);
  assert.deepEqual(await guardMove(h.ports), { outcome: 'completed', phase: 'done' });
  assert.equal(h.elapsed(), 200);
});
