/**
 * Property tests over what the agent parses from the wire (frames.ts,
 * messages.ts, validate.ts through agentSpec, rpc.ts's dispatch with roles):
 * random and mutated input never crashes the agent, fails only with typed
 * errors, and never reaches a method with params the schema refuses or
 * outside the connection's roles. fuzzRuns() cases (TSMIGRATE_FUZZ_RUNS=N for more).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import fc from 'fast-check';
import { PROTOCOL_VERSION } from '../../../src/agent/api.js';
import { FrameDecoder, FrameKind, encodeFrame, type Frame } from '../../../src/agent/protocol/frames.js';
import { callMsg, replyMsg } from '../../../src/agent/protocol/messages.js';
import { serveAgent } from '../../../src/agent/protocol/rpc.js';
import { allowedMethods, ROLES, type Role } from '../../../src/agent/roles.js';
import { agentSpec, methodSpec } from '../../../src/agent/schema.js';
import { TsmError } from '../../../src/errors/errors.js';
import { STORE_FORMAT } from '../../../src/store/backend.js';
import { fuzzRuns } from '../../helpers/fuzz.js';
import { MID, SHA, beginReq, fakeAgent, fakeSigned, helloResult, preflightReq, type FakeAgent } from './helpers.js';

/** Valid params of every method: the mutations start here, so they reach deep into each schema. */
const TEMPLATES: Record<string, unknown> = {
  hello: { protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '0.1.0' },
  preflight: preflightReq,
  putImage: { name: 'busybox', digest: `sha256:${SHA}` },
  begin: beginReq,
  putUpper: { migrationId: MID, phase: 'delta', deleted: ['etc/x', 'a/b/c'], compression: 'zstd', checksum: 'crc32' },
  putLogs: { migrationId: MID, replace: true, parts: [{ file: 'container.log', offset: 0, bytes: 10 }], compression: 'none' },
  warm: { migrationId: MID, bytes: 1 << 20 },
  putImages: { migrationId: MID, compression: 'none', format: 'records', restore: { upper: [`sha256:${SHA}`] } },
  probe: { bytes: 10, compression: 'zstd' },
  prepare: { migrationId: MID, expect: { images: `sha256:${SHA}`, upper: [] }, signed: fakeSigned },
  commit: { migrationId: MID },
  abort: { migrationId: MID },
  status: { migrationId: MID },
  containerStatus: { name: 'web-1' },
  storeOpen: { path: '/srv/s', create: { format: STORE_FORMAT, id: '0123456789abcdef0123456789abcdef', createdAt: 'x', chunking: { algorithm: 'fastcdc-gear32', min: 1, avg: 2, max: 3 }, encryption: null } },
  storeLock: { path: '/srv/s', timeoutMs: 0 },
  storeHas: { path: '/srv/s', ids: [SHA] },
  storeGetSnapshot: { path: '/srv/s', id: 'web-1', offset: 0 },
  storeVerify: { path: '/srv/s', snapshot: null },
  storeGetIndex: { path: '/srv/s', offset: 0 },
};
for (const m of Object.keys(agentSpec)) TEMPLATES[m] ??= { path: '/srv/s' };

/** The fake agent with its store methods recording only (random params must never reach a disk). */
function recorder(): FakeAgent {
  const ok = { ok: true as const };
  const none = async () => ({ chunks: 0, bytes: 0 });
  const drain = async (d: NodeJS.ReadableStream) => {
    for await (const _ of d);
  };
  const a = fakeAgent();
  const rec = (m: string, p: unknown) => void a.calls.push({ method: m, params: p });
  return Object.assign(a, {
    storeOpen: async (p: unknown) => (rec('storeOpen', p), { info: null }),
    storeLock: async (p: unknown) => (rec('storeLock', p), ok),
    storeUnlock: async (p: unknown) => (rec('storeUnlock', p), ok),
    storeHas: async (p: { ids: string[] }) => (rec('storeHas', p), { have: p.ids.map(() => false) }),
    storePutChunks: async (p: unknown, d: NodeJS.ReadableStream) => (rec('storePutChunks', p), await drain(d), { written: 0, bytes: 0 }),
    storeGetChunks: async (p: unknown) => (rec('storeGetChunks', p), { objects: [] }),
    storeListSnapshots: async (p: unknown) => (rec('storeListSnapshots', p), { ids: [] }),
    storeGetSnapshot: async (p: unknown) => (rec('storeGetSnapshot', p), { meta: '', total: 0 }),
    storePutSnapshot: async (p: unknown, d: NodeJS.ReadableStream) => (rec('storePutSnapshot', p), await drain(d), ok),
    storeDeleteSnapshot: async (p: unknown) => (rec('storeDeleteSnapshot', p), ok),
    storeVerify: async (p: unknown) => (rec('storeVerify', p), { chunks: 0, bytes: 0, bad: [], missing: [] }),
    storeCollect: async (p: unknown) => (rec('storeCollect', p), await none()),
    storeStats: async (p: unknown) => (rec('storeStats', p), { chunks: 0, bytes: 0, snapshots: 0 }),
    storeGetIndex: async (p: unknown) => (rec('storeGetIndex', p), { index: null, total: 0 }),
    storePutIndex: async (p: unknown, d: NodeJS.ReadableStream) => (rec('storePutIndex', p), await drain(d), ok),
  });
}

/** An in-memory connection: the server's end and the client's. */
function pipePair() {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  return { server: Duplex.from({ readable: toServer, writable: toClient }), write: (b: Buffer) => toServer.write(b), end: () => toServer.end(), out: toClient };
}

/** Every path (keys and indices) into a JSON value. */
function pathsOf(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (v === null || typeof v !== 'object') return [at];
  const kids = Array.isArray(v) ? v.map((x, i) => pathsOf(x, [...at, i])) : Object.entries(v).map(([k, x]) => pathsOf(x, [...at, k]));
  return [at, ...kids.flat()];
}

type Mutation = { kind: 'replace' | 'delete' | 'add'; at: number; key: string; value: unknown };

/** A copy of `t` with one value replaced, a key deleted, or a key added. */
function mutate(t: unknown, m: Mutation): unknown {
  const root = { v: structuredClone(t) as unknown };
  const paths = pathsOf(root.v).map((p) => ['v', ...p]);
  const p = paths[m.at % paths.length]!;
  let parent: Record<string | number, unknown> = root as Record<string, unknown>;
  for (const k of p.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = p[p.length - 1]!;
  const target = parent[last];
  if (m.kind === 'replace') parent[last] = m.value;
  else if (m.kind === 'delete' && parent !== (root as object)) delete parent[last];
  else if (m.kind === 'add' && target !== null && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[m.key] = m.value;
  else parent[last] = m.value;
  return root.v;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('replace', 'delete', 'add'),
  at: fc.nat(),
  key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'path', 'extra'), fc.string({ maxLength: 8 })),
  value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('/etc', '../..', '/srv/s/../../etc', 'a/../../b', '', '\u0000', -1, 1e300, Number.MAX_SAFE_INTEGER + 2)),
});

const methodName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...Object.keys(agentSpec)) },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'onDisconnect', 'abortLocked'), fc.string({ maxLength: 20 })) },
);

/** A call: valid params of its method, mutated or not, or anything at all; a stream or not. */
const call = fc.record({
  method: methodName,
  params: fc.oneof(
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
    { weight: 6, arbitrary: fc.option(mutation, { nil: undefined, freq: 3 }) },
  ),
  stream: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
});

const codes = /^E[A-Z_]{2,31}$/;

test('random and mutated calls: one reply each, typed errors only, the impl sees only valid params within the roles', async () => {
  await fc.assert(
    fc.asyncProperty(fc.subarray([...ROLES], { minLength: 1 }), fc.array(call, { minLength: 1, maxLength: 8 }), async (roles: Role[], calls) => {
      const impl = recorder();
      const pipe = pipePair();
      const server = serveAgent(pipe.server, impl, { roles });
      const dec = new FrameDecoder();
      const replies: Array<{ type: string; id: number; code?: string; message?: string }> = [];
      let waiter: (() => void) | undefined;
      dec.on('data', (f: Frame) => {
        replies.push(replyMsg(JSON.parse(f.payload.toString('utf8')) as unknown) as (typeof replies)[number]);
        waiter?.();
      });
      pipe.out.pipe(dec);
      let closed = false;
      pipe.out.on('end', () => {
        closed = true;
        waiter?.();
      });
      // the n-th reply, or the connection closed (an envelope that is not a call)
      const reply = (n: number) => new Promise<void>((r) => {
        waiter = () => (replies.length >= n || closed || replies.some((x) => x.id === 0)) && r();
        waiter();
      });
      pipe.write(encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify({ type: 'call', id: 1, method: 'hello', params: TEMPLATES['hello'] }))));
      await reply(1);
      assert.deepEqual(replies[0], { type: 'result', id: 1, value: helloResult });
      let stream = 0;
      const sent: Array<{ method: string; params: unknown; envelope: boolean }> = [];
      for (const [i, c] of calls.entries()) {
        const t = Object.hasOwn(TEMPLATES, c.method) ? TEMPLATES[c.method] : undefined;
        const params = c.params === undefined || (typeof c.params === 'object' && c.params !== null && 'kind' in c.params && 'at' in c.params)
          ? (c.params === undefined || t === undefined ? t : mutate(t, c.params as Mutation))
          : c.params;
        const sid = c.stream ? ++stream : undefined;
        const msg = JSON.parse(JSON.stringify({ type: 'call', id: i + 2, method: c.method, params, ...(sid ? { stream: sid } : {}) })) as unknown;
        let envelope = true;
        try {
          callMsg(msg, 'call');
        } catch {
          envelope = false;
        }
        sent.push({ method: c.method, params, envelope });
        pipe.write(encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify(msg))));
        if (sid && c.stream) {
          if (c.stream.length) pipe.write(encodeFrame(FrameKind.DATA, sid, Buffer.from(c.stream)));
          pipe.write(encodeFrame(FrameKind.END, sid));
        }
        await reply(i + 2);
        if (closed || replies.some((x) => x.id === 0)) break;
      }
      pipe.end();
      await server.closed;
      // one reply per call, in order, each a result or a typed one-line error; a connection error (id 0) only for a broken envelope, and last
      const ids = replies.map((r) => r.id);
      const broken = sent.findIndex((x) => !x.envelope);
      if (broken < 0) assert.deepEqual(ids, [1, ...calls.map((_c, i) => i + 2)]);
      else assert.deepEqual(ids, [1, ...sent.slice(0, broken).map((_c, i) => i + 2), 0]);
      for (const r of replies) {
        if (r.type === 'error') {
          assert.match(r.code!, codes);
          assert.ok(!r.message!.includes('\n'));
          assert.notEqual(r.code, 'EPEER', `an untyped failure: ${r.message}`);
        }
      }
      // what reached the impl: allowed by the roles, and valid by the schema
      const allowed = allowedMethods(roles);
      for (const { method, params } of impl.calls) {
        if (method === 'hello') continue;
        assert.ok(allowed.has(method), `${method} reached the impl with roles ${roles.join(',')}`);
        const spec = methodSpec(method)!;
        assert.doesNotThrow(() => spec.params(params));
      }
      // and every call the schema or the roles refuse got an error, never the impl
      for (const [i, s] of sent.entries()) {
        if (!s.envelope) break;
        const spec = methodSpec(s.method);
        let valid = spec !== undefined && allowed.has(s.method);
        try {
          if (spec) spec.params(s.params);
        } catch {
          valid = false;
        }
        if (!valid) assert.equal(replies[i + 1]!.type, 'error', `${s.method} ${JSON.stringify(s.params)?.slice(0, 200)}`);
      }
    }),
    { numRuns: fuzzRuns() },
  );
});

test('random bytes after a hello, and valid frames with bytes flipped: the agent closes or answers, never throws', async () => {
  const valid = (id: number, method: string) => encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify({ type: 'call', id, method, params: TEMPLATES[method] })));
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
        fc.tuple(fc.constantFrom(...Object.keys(agentSpec)), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 })).map(([m, flips]) => {
          const b = Buffer.concat([valid(2, m), encodeFrame(FrameKind.DATA, 1, Buffer.from('abc')), encodeFrame(FrameKind.END, 1)]);
          for (const [at, x] of flips) b[at % b.length]! ^= x;
          return b;
        }),
      ),
      fc.array(fc.nat({ max: 300 }), { maxLength: 4 }),
      async (bytes, cuts) => {
        const impl = recorder();
        const pipe = pipePair();
        const closes: Array<TsmError | undefined> = [];
        const server = serveAgent(pipe.server, impl, { roles: ['store'], onClose: (r) => closes.push(r) });
        pipe.out.resume();
        pipe.write(valid(1, 'hello'));
        let last = 0;
        for (const c of [...cuts.map((n) => n % (bytes.length + 1))].sort((a, b) => a - b)) {
          pipe.write(bytes.subarray(last, c));
          last = c;
        }
        pipe.write(bytes.subarray(last));
        pipe.end();
        await server.closed;
        for (const r of closes) if (r) assert.ok(r instanceof TsmError && codes.test(r.code), String(r));
        for (const { method, params } of impl.calls) {
          if (method === 'hello') continue;
          assert.ok(allowedMethods(['store']).has(method), method);
          assert.doesNotThrow(() => methodSpec(method)!.params(params));
        }
      },
    ),
    { numRuns: fuzzRuns() },
  );
});

test('the frame decoder: any bytes in any pieces give frames or one EPROTO, and valid frames survive any chunking', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), fc.array(fc.nat({ max: 600 }), { maxLength: 6 }), async (raw, cuts) => {
      const bytes = Buffer.from(raw);
      const dec = new FrameDecoder();
      const frames: Frame[] = [];
      dec.on('data', (f: Frame) => frames.push(f));
      const err = new Promise<Error | undefined>((resolve) => {
        dec.on('error', resolve);
        dec.on('end', () => resolve(undefined));
      });
      let last = 0;
      for (const c of cuts.map((n) => n % (bytes.length + 1)).sort((a, b) => a - b)) {
        dec.write(bytes.subarray(last, c));
        last = c;
      }
      dec.end(bytes.subarray(last));
      const e = await err;
      if (e) assert.ok(e instanceof TsmError && e.code === 'EPROTO', String(e));
      for (const f of frames) assert.ok([FrameKind.JSON, FrameKind.DATA, FrameKind.END, FrameKind.ABORT].includes(f.kind));
    }),
    { numRuns: fuzzRuns() },
  );
});

test('the call envelope: anything JSON is a CallMsg with a bounded method, or an EPROTO', () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.record({ type: fc.constant('call'), id: fc.integer(), method: fc.string({ maxLength: 80 }), params: fc.jsonValue({ maxDepth: 1 }), stream: fc.option(fc.integer(), { nil: undefined }) })), (v) => {
      try {
        const c = callMsg(v, 'call');
        assert.equal(c.type, 'call');
        assert.ok(Number.isSafeInteger(c.id) && c.id >= 1 && c.method.length <= 64);
      } catch (e) {
        assert.ok(e instanceof TsmError && e.code === 'EPROTO', String(e));
      }
    }),
    { numRuns: fuzzRuns() },
  );
});
