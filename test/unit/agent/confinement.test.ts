/**
 * Finding 5 of issue 16: a client that speaks the agent protocol itself (raw
 * frames, no client-side checks) against a real LocalAgent on a temp state
 * root, served with a store directory and roles as `tsmigrate agent --stdio
 * --role ... --store-dir ...` would. Every attack is refused and the victims
 * (directories and files outside the store directory) are untouched.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Role } from '../../../src/agent/roles.js';
import { serveAgent } from '../../../src/agent/protocol/rpc.js';
import { FrameKind, encodeFrame } from '../../../src/agent/protocol/frames.js';
import { LocalAgent } from '../../../src/agent/server.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { STORE_FORMAT, type StoreInfo } from '../../../src/store/backend.js';
import { encodeRecords } from '../../../src/store/records.js';
import type { StoreRoots } from '../../../src/store/store-dirs.js';
import { snapshot } from '../../helpers/tree-snapshot.js';
import { MID, RawPeer, beginReq, fakeSigned, preflightReq, socketPair } from './helpers.js';

const T = mkdtempSync(path.join(tmpdir(), 'tsm-confine-'));
after(() => rmSync(T, { recursive: true, force: true }));

const INFO: StoreInfo = { format: STORE_FORMAT, id: '0123456789abcdef0123456789abcdef', createdAt: '2026-01-01T00:00:00.000Z', chunking: { algorithm: 'fastcdc-gear32', min: 8192, avg: 32768, max: 131072 }, encryption: null };
const ID = 'ab'.repeat(32);

/** A fresh peer: state root, a store directory, a victim directory outside it with a "lock" tree and a file. */
function peer(name: string) {
  const dir = path.join(T, name);
  const root = path.join(dir, 'state');
  const stores = path.join(dir, 'stores');
  const victim = path.join(dir, 'victim');
  mkdirSync(root, { recursive: true });
  mkdirSync(stores, { mode: 0o755 });
  mkdirSync(path.join(victim, 'lock', 'keep'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(victim, 'lock', 'owner'), '999999999\n'); // a "dead holder": the old code removed this tree
  writeFileSync(path.join(victim, 'secret'), 'the host secret\n');
  return { dir, root, stores, victim };
}

class Hostile extends RawPeer {
  private id = 1;
  private stream = 0;
  /** one call (with a data stream when `data` is given); its reply */
  async call(method: string, params: unknown, data?: Buffer): Promise<Record<string, unknown>> {
    const id = ++this.id;
    const stream = data ? ++this.stream : undefined;
    this.send({ type: 'call', id, method, params, ...(stream ? { stream } : {}) });
    if (stream && data) {
      this.sock.write(encodeFrame(FrameKind.DATA, stream, data));
      this.sock.write(encodeFrame(FrameKind.END, stream));
    }
    const r = await this.next();
    assert.ok(r, `the agent closed the connection on ${method}`);
    assert.equal(r['id'], id);
    return r;
  }
}

async function serve(root: string, roles: readonly Role[], storeRoots: StoreRoots) {
  const pair = await socketPair();
  const agent = new LocalAgent(createRuntime({ root }), 'test', { storeRoots });
  const server = serveAgent(pair.b, agent, { roles });
  const c = new Hostile(pair.a);
  c.hello();
  assert.equal((await c.next())?.['type'], 'result');
  return { c, close: async () => { await pair.cleanup(); await server.closed; await agent.onDisconnect(); } };
}

const refused = (r: Record<string, unknown>, code: string, re: RegExp) => {
  assert.equal(r['type'], 'error', JSON.stringify(r));
  assert.equal(r['code'], code, JSON.stringify(r));
  assert.match(String(r['message']), re);
};

test('a store key: lock, unlock, open, put chunks outside the store directory are refused; the victim is untouched', async () => {
  const p = peer('outside');
  const { c, close } = await serve(p.root, ['store'], [p.stores]);
  const before = await snapshot(p.victim);
  try {
    refused(await c.call('storeLock', { path: p.victim, timeoutMs: 0 }), 'EFORBIDDEN', /is outside this host's store directories/);
    refused(await c.call('storeUnlock', { path: p.victim }), 'EFORBIDDEN', /is outside/);
    refused(await c.call('storeOpen', { path: p.victim, create: INFO }), 'EFORBIDDEN', /is outside/);
    refused(await c.call('storeOpen', { path: path.join(p.victim, 'new'), create: INFO }), 'EFORBIDDEN', /is outside/);
    refused(await c.call('storePutChunks', { path: p.victim }, encodeRecords([{ id: ID, obj: Buffer.from('x') }])), 'EFORBIDDEN', /is outside/);
    refused(await c.call('storeDeleteSnapshot', { path: p.victim, id: 'secret' }), 'EFORBIDDEN', /is outside/);
    // `..` out of the store directory, and a path not normalised
    refused(await c.call('storeOpen', { path: `${p.stores}/../victim`, create: INFO }), 'EINVAL_ARG', /is not allowed/);
    refused(await c.call('storeOpen', { path: `${p.stores}/./s`, create: INFO }), 'EINVAL_ARG', /is not allowed/);
    // ids with `..` or slashes never reach the disk (the wire schema)
    refused(await c.call('storeGetSnapshot', { path: `${p.stores}/s`, id: '../../victim/secret', offset: 0 }), 'EPROTO', /storeGetSnapshot.params.id/);
    refused(await c.call('storeHas', { path: `${p.stores}/s`, ids: ['../victim'] }), 'EPROTO', /storeHas.params.ids/);
  } finally {
    await close();
  }
  assert.deepEqual(await snapshot(p.victim), before);
  assert.equal(statSync(p.victim).mode & 0o777, 0o755);
});

test('links in the store directory are refused, never followed: the store itself, chunks/, a chunk dir, a snapshot, the lock', async () => {
  const p = peer('links');
  // a link as the store, and as a component on the way to it
  symlinkSync(p.victim, path.join(p.stores, 'evil'));
  const { c, close } = await serve(p.root, ['store'], [p.stores]);
  const before = await snapshot(p.victim);
  try {
    refused(await c.call('storeOpen', { path: path.join(p.stores, 'evil'), create: INFO }), 'EFORBIDDEN', /evil is a symbolic link/);
    refused(await c.call('storeOpen', { path: path.join(p.stores, 'evil', 'sub'), create: INFO }), 'EFORBIDDEN', /evil is a symbolic link/);
    refused(await c.call('storeOpen', { path: path.join(p.stores, 'evil'), create: null }), 'EFORBIDDEN', /evil is a symbolic link/);

    // a real store whose insides were replaced by links pointing out
    const good = path.join(p.stores, 'good');
    assert.equal((await c.call('storeOpen', { path: good, create: INFO }))['type'], 'result');
    rmSync(path.join(good, 'chunks'), { recursive: true });
    symlinkSync(p.victim, path.join(good, 'chunks'));
    refused(await c.call('storePutChunks', { path: good }, encodeRecords([{ id: ID, obj: Buffer.from('x') }])), 'EFORBIDDEN', /chunks is a symbolic link/);
    refused(await c.call('storeCollect', { path: good }), 'EFORBIDDEN', /chunks is a symbolic link/);
    symlinkSync(path.join(p.victim, 'secret'), path.join(good, 'snapshots', 'web-1.meta'));
    const snap = await c.call('storeGetSnapshot', { path: good, id: 'web-1', offset: 0 });
    refused(snap, 'EFORBIDDEN', /web-1.meta is a symbolic link/);
    assert.doesNotMatch(JSON.stringify(snap), /host secret|dGhlIGhvc3Qgc2VjcmV0/);
    symlinkSync(path.join(p.victim, 'lock'), path.join(good, 'lock'));
    refused(await c.call('storeLock', { path: good, timeoutMs: 0 }), 'EFORBIDDEN', /lock is a symbolic link/);
    // unlock releases only a lock this connection took: nothing here, nothing removed
    assert.deepEqual((await c.call('storeUnlock', { path: good }))['value'], { ok: true });
  } finally {
    await close();
  }
  assert.deepEqual(await snapshot(p.victim), before);
});

test('a chunk directory that is a link: has() and puts are refused, nothing written through it', async () => {
  const p = peer('chunkdir');
  const { c, close } = await serve(p.root, ['store'], [p.stores]);
  const s = path.join(p.stores, 's');
  try {
    assert.equal((await c.call('storeOpen', { path: s, create: INFO }))['type'], 'result');
    symlinkSync(p.victim, path.join(s, 'chunks', 'ab'));
    refused(await c.call('storePutChunks', { path: s }, encodeRecords([{ id: ID, obj: Buffer.from('x') }])), 'EFORBIDDEN', /chunks\/ab is a symbolic link/);
    refused(await c.call('storeHas', { path: s, ids: [ID] }), 'EFORBIDDEN', /chunks\/ab is a symbolic link/);
  } finally {
    await close();
  }
  assert.deepEqual(readdirSync(p.victim).sort(), ['lock', 'secret']);
});

test('no store directory configured (the default): a directory that is not a store is never locked, written or chmod-ed', async () => {
  const p = peer('default');
  const { c, close } = await serve(p.root, ['migrate', 'store', 'restore'], 'any');
  const before = await snapshot(p.victim);
  const empty = path.join(p.dir, 'empty');
  mkdirSync(empty, { mode: 0o755 });
  try {
    // not a store: storeOpen without create says so and opens nothing
    assert.deepEqual((await c.call('storeOpen', { path: p.victim, create: null }))['value'], { info: null });
    refused(await c.call('storeLock', { path: p.victim, timeoutMs: 0 }), 'EBAD_STATE', /is not open on this connection/);
    refused(await c.call('storeUnlock', { path: p.victim }), 'EBAD_STATE', /is not open/);
    refused(await c.call('storePutChunks', { path: p.victim }, encodeRecords([{ id: ID, obj: Buffer.from('x') }])), 'EBAD_STATE', /is not open/);
    refused(await c.call('storeOpen', { path: p.victim, create: INFO }), 'EINVAL_ARG', /non-empty directory that is not a tsmigrate store/);
    refused(await c.call('storeOpen', { path: '/proc/self', create: INFO }), 'EINVAL_ARG', /is not allowed/);
  } finally {
    await close();
  }
  assert.deepEqual(await snapshot(p.victim), before);
  assert.equal(statSync(empty).mode & 0o777, 0o755);
});

test('the store lock: a dead holder is taken over, a lock holding anything else is refused and kept', async () => {
  const p = peer('lock');
  const { c, close } = await serve(p.root, ['store'], [p.stores]);
  const s = path.join(p.stores, 's');
  try {
    assert.equal((await c.call('storeOpen', { path: s, create: INFO }))['type'], 'result');
    assert.equal(statSync(s).mode & 0o777, 0o700);
    mkdirSync(path.join(s, 'lock'));
    writeFileSync(path.join(s, 'lock', 'owner'), '999999999\n');
    assert.equal((await c.call('storeLock', { path: s, timeoutMs: 0 }))['type'], 'result');
    assert.equal(readFileSync(path.join(s, 'lock', 'owner'), 'utf8'), `${process.pid}\n`);
    assert.equal((await c.call('storeUnlock', { path: s }))['type'], 'result');
    assert.equal(existsSync(path.join(s, 'lock')), false);
    mkdirSync(path.join(s, 'lock', 'other'), { recursive: true });
    writeFileSync(path.join(s, 'lock', 'owner'), '999999999\n');
    refused(await c.call('storeLock', { path: s, timeoutMs: 0 }), 'EBUSY', /lock directory .* holds files tsmigrate did not put there/);
    assert.equal(existsSync(path.join(s, 'lock', 'other')), true);
  } finally {
    await close();
  }
});

test('a store-only key cannot receive a container: preflight, putImage, begin, putImages, prepare, commit, abort refused, nothing made', async () => {
  const p = peer('storeonly');
  const { c, close } = await serve(p.root, ['store'], [p.stores]);
  const before = await snapshot(p.root);
  try {
    const calls: Array<[string, unknown, Buffer?]> = [
      ['preflight', preflightReq],
      ['putImage', { name: 'busybox', digest: `sha256:${'b'.repeat(64)}` }, Buffer.from('tar')],
      ['begin', beginReq],
      ['putUpper', { migrationId: MID, phase: 'base', deleted: [], compression: 'none' }, Buffer.from('tar')],
      ['putImages', { migrationId: MID, compression: 'none' }, Buffer.from('tar')],
      ['warm', { migrationId: MID, bytes: 1 << 30 }],
      ['prepare', { migrationId: MID, expect: { images: `sha256:${'c'.repeat(64)}`, upper: [] }, signed: fakeSigned }],
      ['commit', { migrationId: MID }],
      ['abort', { migrationId: MID }],
      ['status', { migrationId: MID }],
    ];
    for (const [m, params, data] of calls) refused(await c.call(m, params, data), 'EFORBIDDEN', new RegExp(`as store: ${m} needs the role migrate`));
    // what every role may ask
    assert.deepEqual((await c.call('containerStatus', { name: 'web-1' }))['value'], { status: 'absent', epochSeen: 0 });
  } finally {
    await close();
  }
  assert.deepEqual(await snapshot(p.root), before);
});

test('a migrate key cannot reach stores; a restore key cannot warm or probe', async () => {
  const p = peer('migrateonly');
  const m = await serve(p.root, ['migrate'], []);
  try {
    refused(await m.c.call('storeOpen', { path: path.join(p.stores, 's'), create: INFO }), 'EFORBIDDEN', /as migrate: storeOpen needs the role store/);
  } finally {
    await m.close();
  }
  assert.deepEqual(readdirSync(p.stores), []);
  const r = await serve(p.root, ['restore'], []);
  try {
    refused(await r.c.call('warm', { migrationId: MID, bytes: 1 << 30 }), 'EFORBIDDEN', /as restore: warm needs the role migrate/);
    refused(await r.c.call('probe', { bytes: 3 }, Buffer.from('abc')), 'EFORBIDDEN', /probe needs the role migrate/);
  } finally {
    await r.close();
  }
});
