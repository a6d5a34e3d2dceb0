import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { FrameKind, encodeFrame } from '../../../src/agent/protocol/frames.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { MID, SHA, digestStream, fakeAgent, isCode, raw, setup } from './helpers.js';

test('transport destroyed mid-stream: the call rejects with EPEER within 1 s, the consumer sees an error', async () => {
  for (const side of ['client', 'server'] as const) {
    let consumerError: unknown;
    let received = 0;
    const impl = fakeAgent({
      putImages: async (_p, data) => {
        try {
          return await digestStream(data, async (n) => void (received += n));
        } catch (e) {
          consumerError = e;
          throw e;
        }
      },
    });
    const t = await setup(impl);
    try {
      const endless = new Readable({ read() { this.push(Buffer.alloc(64 * 1024, 1)); } });
      const call = t.client.putImages({ migrationId: MID, compression: 'none' }, endless);
      while (received < 4 * 1024 * 1024) await sleep(5);
      const t0 = Date.now();
      (side === 'client' ? t.a : t.b).destroy();
      await assert.rejects(call, isCode('EPEER', /the connection to the peer agent was lost/));
      assert.ok(Date.now() - t0 < 1000);
      await t.server.closed;
      assert.ok(consumerError instanceof Error, `${side}: the consumer saw ${String(consumerError)}`);
      assert.ok(t.client.closed);
      assert.ok(endless.destroyed);
    } finally {
      await t.cleanup();
    }
  }
});

test('a failing source aborts the stream: the call rejects with its error, the connection lives on', async () => {
  let consumerError: unknown;
  const impl = fakeAgent({
    putUpper: async (_p, data) => {
      try {
        return await digestStream(data);
      } catch (e) {
        consumerError = e;
        throw e;
      }
    },
  });
  const t = await setup(impl);
  try {
    const src = new Readable({ read() {} });
    src.push(Buffer.alloc(100_000));
    setTimeout(() => src.destroy(new Error('disk on fire')), 20);
    await assert.rejects(t.client.putUpper({ migrationId: MID, phase: 'delta', deleted: [], compression: 'none' }, src), /disk on fire/);
    assert.deepEqual(await t.client.status({ migrationId: MID }), { phase: 'prepared' });
    assert.ok(isTsmError(consumerError, 'EIO'));
    assert.match(consumerError.message, /the sender aborted the stream: the source's data failed: disk on fire/);
  } finally {
    await t.cleanup();
  }
});

test('an answer before the stream ends: the rest is dropped, the source destroyed', async () => {
  const impl = fakeAgent({ putImage: async () => ({ bytes: 0, digest: `sha256:${SHA}` }) });
  const t = await setup(impl);
  try {
    let sent = 0;
    const src = new Readable({ read() { sent += 65536; this.push(sent > 64 * 1024 * 1024 ? null : Buffer.alloc(65536)); } });
    assert.deepEqual(await t.client.putImage({ name: 'alpine', digest: `sha256:${SHA}` }, src), { bytes: 0, digest: `sha256:${SHA}` });
    await sleep(20);
    assert.ok(src.destroyed);
    assert.ok(sent < 64 * 1024 * 1024);
    assert.deepEqual(await t.client.status({ migrationId: MID }), { phase: 'prepared' });
  } finally {
    await t.cleanup();
  }
});

test('timeouts and cancellation close the connection', async () => {
  const hang = fakeAgent({ status: () => new Promise(() => {}) });
  const t = await setup(hang, { timeoutMs: 100 });
  try {
    await assert.rejects(t.client.status({ migrationId: MID }), isCode('EPEER', /did not answer status within 0.1 s/));
    assert.ok(t.client.closed);
  } finally {
    await t.cleanup();
  }
  const ac = new AbortController();
  const u = await setup(fakeAgent({ status: () => new Promise(() => {}) }), { signal: ac.signal });
  try {
    const p = u.client.status({ migrationId: MID });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, isCode('EPEER', /cancelled/));
    while (u.reasons.length === 0) await sleep(5);
    assert.equal(u.reasons.length, 1, 'the agent saw the connection go');
  } finally {
    await u.cleanup();
  }
});

test('the connection dies with a stream call still queued: no crash, the agent just closes', async () => {
  let release!: () => void;
  const t = await raw(fakeAgent({ status: () => new Promise((r) => (release = () => r({ phase: 'late' }))) }));
  try {
    t.peer.hello();
    await t.peer.next();
    t.peer.send({ type: 'call', id: 2, method: 'status', params: { migrationId: MID } });
    t.peer.send({ type: 'call', id: 3, method: 'probe', params: { bytes: 10 }, stream: 1 });
    t.a.write(encodeFrame(FrameKind.DATA, 1, Buffer.alloc(10)));
    t.peer.send({ type: 'call', id: 4, method: 'probe', params: { bytes: 10 }, stream: 2 });
    t.a.write(encodeFrame(FrameKind.ABORT, 2, Buffer.from('{"code":"EIO","message":"gone"}')));
    await sleep(20);
    t.a.destroy();
    while (t.reasons.length === 0) await sleep(5);
    assert.equal(typeof release, 'function', 'status is being served');
    release();
    await t.server.closed;
    assert.deepEqual(t.impl.calls.map((c) => c.method), ['hello'], 'the queued probes never ran');
  } finally {
    await t.cleanup();
  }
});

test('stream calls have no timeout unless asked; plain calls default to 60 s', async () => {
  const t = await setup(fakeAgent(), { timeoutMs: 50 });
  try {
    const slow = new Readable({ read() {} });
    const call = t.client.probe({ bytes: 1 }, slow);
    await sleep(120);
    slow.push('x');
    slow.push(null);
    assert.equal((await call).bytes, 1);
  } finally {
    await t.cleanup();
  }
  const u = await setup(fakeAgent(), { streamTimeoutMs: 50 });
  try {
    await assert.rejects(u.client.probe({ bytes: 1 }, new Readable({ read() {} })), isCode('EPEER', /did not answer probe within 0.05 s/));
  } finally {
    await u.cleanup();
  }
});
