import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { PROTOCOL_VERSION } from '../../../src/agent/api.js';
import { FrameKind, encodeFrame } from '../../../src/agent/protocol/frames.js';
import { connectAgent, serveAgent } from '../../../src/agent/protocol/rpc.js';
import { TsmError, isTsmError } from '../../../src/errors/errors.js';
import { CriuError, explainCriuFailure } from '../../../src/criu/errors.js';
import { MID, RawPeer, SHA, beginReq, fakeAgent, fakeSigned, helloResult, isCode, preflightReq, raw, setup, sha, socketPair } from './helpers.js';

test('every method round-trips; the client is an AgentApi', async () => {
  const t = await setup();
  try {
    assert.deepEqual(t.client.peer, helloResult);
    assert.deepEqual(await t.client.hello({ protocol: PROTOCOL_VERSION, tool: 'x', version: '1' }), helloResult);
    assert.deepEqual(await t.client.preflight(preflightReq), { ok: false, problems: [{ check: 'disk', message: 'not enough space', fix: 'free some' }], needImage: true, freeBytes: 123 });
    assert.deepEqual(await t.client.begin(beginReq), { ok: true });
    const blob = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
    const imgP = { name: 'alpine', digest: `sha256:${SHA}` };
    assert.deepEqual(await t.client.putImage(imgP, Readable.from([blob])), { bytes: blob.length, digest: `sha256:${sha(blob)}` });
    const upP = { migrationId: MID, phase: 'base' as const, deleted: ['a/b'], compression: 'none' as const };
    assert.deepEqual(await t.client.putUpper(upP, Readable.from([Buffer.from('hello'), 'world'])), { bytes: 10, digest: `sha256:${sha(Buffer.from('helloworld'))}` });
    assert.deepEqual(await t.client.putImages({ migrationId: MID, compression: 'zstd' }, Readable.from([])), { bytes: 0, digest: `sha256:${sha(Buffer.alloc(0))}` });
    assert.deepEqual(await t.client.probe({ bytes: 5 }, Readable.from([Buffer.from('12345')])), { bytes: 5, digest: `sha256:${sha(Buffer.from('12345'))}` });
    assert.deepEqual(await t.client.prepare({ migrationId: MID, expect: { images: `sha256:${SHA}`, upper: [`crc32:${SHA.slice(0, 8)}`] }, signed: fakeSigned }), { restoreMs: 12.5, initPid: 4242, setupMs: 2.5, criuMs: 9 });
    assert.deepEqual(await t.client.commit({ migrationId: MID }), { resumeMs: 3 });
    assert.deepEqual(await t.client.status({ migrationId: MID }), { phase: 'prepared' });
    assert.deepEqual(await t.client.abort({ migrationId: MID }), { ok: true });
    assert.deepEqual(t.impl.calls.map((c) => c.method), ['hello', 'hello', 'preflight', 'begin', 'putImage', 'putUpper', 'putImages', 'probe', 'prepare', 'commit', 'status', 'abort']);
    assert.deepEqual(t.impl.calls[2]!.params, preflightReq);
    assert.deepEqual(t.impl.calls[5]!.params, upP);
    // concurrent calls are queued and answered in order
    const all = await Promise.all([t.client.status({ migrationId: MID }), t.client.probe({ bytes: 1 }, Readable.from(['x'])), t.client.commit({ migrationId: MID })]);
    assert.deepEqual(all.map((r) => Object.keys(r)[0]), ['phase', 'bytes', 'resumeMs']);
    await t.client.close();
    await t.server.closed;
    assert.deepEqual(t.reasons, [undefined]);
    await assert.rejects(t.client.status({ migrationId: MID }), isCode('EPEER'));
  } finally {
    await t.cleanup();
  }
});

test('protocol version mismatch: a clear error on both sides, then closed', async () => {
  const t = await raw();
  try {
    t.peer.hello(PROTOCOL_VERSION + 1);
    const m = await t.peer.next();
    assert.deepEqual(m, {
      type: 'error', id: 1, code: 'EPROTO',
      message: `protocol version mismatch: peer speaks ${PROTOCOL_VERSION + 1}, this tsmigrate speaks ${PROTOCOL_VERSION}`,
      fix: 'install the same tsmigrate version on both hosts',
    });
    await t.peer.closed();
    await t.server.closed;
    assert.equal(t.impl.calls.length, 0);
  } finally {
    await t.cleanup();
  }
  // the client words it from its side, whether the agent refuses or answers a different version
  const u = await socketPair();
  try {
    const agent = new RawPeer(u.b);
    const connecting = connectAgent(u.a);
    const hello = await agent.next();
    assert.equal((hello?.params as { protocol: number }).protocol, PROTOCOL_VERSION);
    agent.send({ type: 'error', id: 1, code: 'EPROTO', message: `protocol version mismatch: peer speaks ${PROTOCOL_VERSION}, this tsmigrate speaks 7`, fix: 'install the same tsmigrate version on both hosts' });
    await assert.rejects(connecting, isCode('EPROTO', new RegExp(`^protocol version mismatch: peer speaks 7, this tsmigrate speaks ${PROTOCOL_VERSION}$`)));
  } finally {
    await u.cleanup();
  }
  const v = await socketPair();
  try {
    serveAgent(v.b, fakeAgent({ hello: async () => ({ ...helloResult, protocol: 9 }) }));
    await assert.rejects(connectAgent(v.a), isCode('EPROTO', new RegExp(`peer speaks 9, this tsmigrate speaks ${PROTOCOL_VERSION}`)));
  } finally {
    await v.cleanup();
  }
});

test('the first call must be hello', async () => {
  const t = await raw();
  try {
    t.peer.send({ type: 'call', id: 1, method: 'status', params: { migrationId: MID } });
    assert.match(String((await t.peer.next())?.message), /first call must be hello, not "status"/);
    await t.peer.closed();
    assert.equal(t.impl.calls.length, 0);
  } finally {
    await t.cleanup();
  }
});

test('an oversized frame: EPROTO to the peer, connection closed', async () => {
  const t = await raw();
  try {
    t.peer.hello();
    assert.equal((await t.peer.next())?.type, 'result');
    const h = Buffer.alloc(9);
    h.writeUInt32BE(64 * 1024 * 1024, 0);
    h[4] = FrameKind.DATA;
    h.writeUInt32BE(1, 5);
    t.a.write(h);
    const m = await t.peer.next();
    assert.equal(m?.id, 0);
    assert.equal(m?.code, 'EPROTO');
    assert.match(String(m?.message), /DATA frame declares 67108864 bytes, more than the 1048576 allowed/);
    await t.peer.closed();
    await t.server.closed;
    assert.ok(isTsmError(t.reasons[0], 'EPROTO'));
  } finally {
    await t.cleanup();
  }
});

test('a corrupted length: EPROTO, connection closed', async () => {
  for (const [byte, mask, re] of [[0, 0xff, /not tsmigrate frames/], [3, 0x01, /not valid JSON/]] as const) {
    const t = await raw();
    try {
      const json = JSON.stringify({ type: 'call', id: 1, method: 'hello', params: { protocol: 1, tool: 't', version: '0' } });
      const hello = encodeFrame(FrameKind.JSON, 0, Buffer.from(json.length % 2 ? json : ` ${json}`)); // odd: ^1 cuts the '}'
      hello[byte]! ^= mask;
      t.a.write(Buffer.concat([hello, encodeFrame(FrameKind.JSON, 0, Buffer.from('{}'))]));
      const m = await t.peer.next();
      assert.equal(m?.code, 'EPROTO');
      assert.match(String(m?.message), re);
      await t.peer.closed();
      assert.ok(isTsmError(t.reasons[0], 'EPROTO'));
      assert.equal(t.impl.calls.length, 0);
    } finally {
      await t.cleanup();
    }
  }
});

test('invalid params: EPROTO from the server, the impl is never called, the connection lives on', async () => {
  const t = await raw();
  try {
    t.peer.hello();
    await t.peer.next();
    t.peer.send({ type: 'call', id: 2, method: 'preflight', params: { ...preflightReq, name: 'A/..' } });
    const m = await t.peer.next();
    assert.equal(m?.code, 'EPROTO');
    assert.match(String(m?.message), /^bad message: preflight\.params\.name: "A\/\.\." does not match/);
    // a stream call with bad params: its data is dropped
    t.peer.send({ type: 'call', id: 3, method: 'putImage', params: { name: 'A/..', digest: 'x' }, stream: 1 });
    t.a.write(encodeFrame(FrameKind.DATA, 1, Buffer.alloc(100_000)));
    t.a.write(encodeFrame(FrameKind.END, 1));
    assert.equal((await t.peer.next())?.code, 'EPROTO');
    t.peer.send({ type: 'call', id: 4, method: 'status', params: { migrationId: MID } });
    assert.deepEqual(await t.peer.next(), { type: 'result', id: 4, value: { phase: 'prepared' } });
    assert.deepEqual(t.impl.calls.map((c) => c.method), ['hello', 'status']);
    // not a call at all: the connection is unusable
    t.peer.send({ type: 'result', id: 5, value: 1 });
    assert.equal((await t.peer.next())?.id, 0);
    await t.peer.closed();
  } finally {
    await t.cleanup();
  }
  // the client checks params too, before sending
  const c = await setup();
  try {
    await assert.rejects(c.client.begin({ ...beginReq, name: 'A/..' }), isCode('EPROTO', /begin\.params\.name/));
    const data = Readable.from([Buffer.alloc(10)]);
    await assert.rejects(c.client.putImage({ name: 'alpine', digest: 'nope' }, data), isCode('EPROTO', /putImage\.params\.digest/));
    assert.ok(data.destroyed);
    assert.deepEqual(c.impl.calls.map((x) => x.method), ['hello']);
  } finally {
    await c.cleanup();
  }
});

test('unknown methods are refused, not dispatched', async () => {
  const t = await raw();
  try {
    t.peer.hello();
    await t.peer.next();
    let id = 2;
    for (const method of ['rm', 'toString', '__proto__', 'constructor', 'hasOwnProperty']) {
      t.peer.send({ type: 'call', id: id++, method, params: {} });
      const m = await t.peer.next();
      assert.equal(m?.code, 'EPROTO');
      assert.match(String(m?.message), /^unknown method "/);
    }
    t.peer.send({ type: 'call', id: id++, method: 'status', params: { migrationId: MID }, stream: 1 });
    assert.match(String((await t.peer.next())?.message), /status takes no data stream/);
    t.peer.send({ type: 'call', id: id++, method: 'probe', params: { bytes: 1 } });
    assert.match(String((await t.peer.next())?.message), /probe needs data stream/);
  } finally {
    await t.cleanup();
  }
});

test('errors thrown by the impl reach the client: TsmError fields kept, others become EPEER', async () => {
  const impl = fakeAgent({
    commit: async () => {
      throw new TsmError('ECRIU', 'criu restore failed: task 12 exited', { fix: 'read /var/log/criu.log' });
    },
    status: async () => {
      throw new Error('boom\nwith a second line');
    },
    abort: async () => ({ ok: false }) as never,
  });
  const t = await setup(impl);
  try {
    await assert.rejects(t.client.commit({ migrationId: MID }), (e: unknown) => {
      assert.ok(e instanceof TsmError);
      assert.deepEqual([e.code, e.message, e.fix], ['ECRIU', 'criu restore failed: task 12 exited', 'read /var/log/criu.log']);
      return true;
    });
    await assert.rejects(t.client.status({ migrationId: MID }), isCode('EPEER', /^the peer agent failed: boom with a second line$/));
    await assert.rejects(t.client.abort({ migrationId: MID }), isCode('EINTERNAL', /agent's abort result is invalid/));
    assert.deepEqual(await t.client.prepare({ migrationId: MID, expect: { images: `crc32:${SHA.slice(0, 8)}`, upper: [] }, signed: fakeSigned }), { restoreMs: 12.5, initPid: 4242, setupMs: 2.5, criuMs: 9 });
  } finally {
    await t.cleanup();
  }
});

test('a peer CRIU error cites its kept log as on the peer, by the name the source knows it by', async () => {
  const impl = fakeAgent({
    prepare: async () => {
      throw new CriuError('restore', explainCriuFailure('restore', '(00.1) Error (criu/cr-restore.c:1237): Can\'t fork for 31851: File exists\n'), { logPath: '/var/lib/tsmigrate/logs/criu/restore-web-x.log' });
    },
  });
  const t = await setup(impl, { peerName: 'host-b' });
  try {
    await assert.rejects(t.client.prepare({ migrationId: MID, expect: { images: `crc32:${SHA.slice(0, 8)}`, upper: [] }, signed: fakeSigned }), (e: unknown) => {
      assert.ok(e instanceof TsmError);
      assert.match(e.fix ?? '', /\(CRIU log on host-b: \/var\/lib\/tsmigrate\/logs\/criu\/restore-web-x\.log\)$/);
      assert.match(e.message, /CRIU logged: "Error \(criu\/cr-restore\.c:1237\): Can't fork for 31851: File exists"/);
      return true;
    });
  } finally {
    await t.cleanup();
  }
});
