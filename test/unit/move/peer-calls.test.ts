/**
 * The peer calls' time limits (src/move/peer-calls.ts): a connection that
 * arrives after its caller gave up is closed, never left open (an open one
 * kept a failed mover alive, and the freeze watchdog waiting for its end).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentApi } from '../../../src/agent/api.js';
import { abortOnPeer, commitOnPeer, connectWithin } from '../../../src/move/peer-calls.js';
import type { PeerConnection } from '../../../src/move/report.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** connect() answering after `delayMs` with a connection whose calls never answer; counts what it opened and closed */
function slowPeer(delayMs: number) {
  const s = { opened: 0, closed: 0 };
  const never = () => new Promise<never>(() => undefined);
  const connect = async (): Promise<PeerConnection> => {
    await sleep(delayMs);
    s.opened++;
    return { agent: { hello: never, commit: never, abort: never, status: never } as unknown as AgentApi, close: async () => void s.closed++ };
  };
  return { s, connect };
}

test('connectWithin: past the limit it fails, and the connection arriving later is closed', async () => {
  const { s, connect } = slowPeer(150);
  await assert.rejects(connectWithin(connect, 50), /did not answer/);
  await sleep(250);
  assert.deepEqual(s, { opened: 1, closed: 1 });
});

test('connectWithin: in time, the connection is the caller\'s (not closed)', async () => {
  const { s, connect } = slowPeer(10);
  const c = await connectWithin(connect, 1000);
  assert.ok(c);
  assert.deepEqual(s, { opened: 1, closed: 0 });
});

test('commitOnPeer giving up at its deadline leaves no connection open, late ones included', async () => {
  const { s, connect } = slowPeer(1300);
  const first = await connect();
  s.opened = 0;
  const t0 = performance.now();
  await assert.rejects(commitOnPeer(first, connect, 'm-x', 3000, 300));
  assert.ok(performance.now() - t0 < 5000, `gave up by its deadline (${Math.round(performance.now() - t0)} ms)`);
  await sleep(1600);
  assert.equal(s.closed, s.opened, `opened ${s.opened}, closed ${s.closed}`);
  assert.ok(s.opened >= 1, 'it tried again over a new connection');
});

test('abortOnPeer with a peer too slow to connect: false, and every late connection closed', async () => {
  const { s, connect } = slowPeer(200);
  assert.equal(await abortOnPeer(undefined, connect, 'm-y', 100), false);
  await sleep(400);
  assert.deepEqual([s.opened, s.closed], [2, 2]);
});
