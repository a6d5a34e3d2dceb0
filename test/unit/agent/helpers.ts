/** Test helpers for the agent protocol: socket pairs, a fake AgentApi, valid params, a raw frame peer. */
import { createHash } from 'node:crypto';
import { StoreService } from '../../../src/store/service.js';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { AgentApi, BeginRequest, HelloResult, PreflightRequest, SignedStatement, StreamResult } from '../../../src/agent/api.js';
import { PROTOCOL_VERSION } from '../../../src/agent/api.js';
import type { ContainerConfig } from '../../../src/container/types.js';
import { type Frame, FrameDecoder, FrameKind, encodeFrame, parseJsonPayload } from '../../../src/agent/protocol/frames.js';
import { type ConnectOptions, connectAgent, serveAgent } from '../../../src/agent/protocol/rpc.js';
import { TsmError } from '../../../src/errors/errors.js';

/** Two connected unix sockets (real kernel buffers, so real back-pressure). */
export async function socketPair(): Promise<{ a: net.Socket; b: net.Socket; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsm-agent-'));
  const sock = path.join(dir, 's');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const a = net.connect(sock);
  await new Promise<void>((resolve, reject) => a.once('connect', resolve).once('error', reject));
  const b = await accepted;
  server.close();
  return {
    a,
    b,
    cleanup: async () => {
      a.destroy();
      b.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const MID = 'mig-0123456789';
export const SHA = 'a'.repeat(64);

export const config: ContainerConfig = {
  name: 'web-1',
  image: { name: 'alpine', digest: `sha256:${'b'.repeat(64)}` },
  command: ['/bin/sh', '-c', 'sleep 1000'],
  env: ['PATH=/usr/bin:/bin'],
  workdir: '/',
  user: { uid: 0, gid: 0 },
  hostname: 'web-1',
  limits: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pidsLimit: 100 },
  net: { mode: 'bridge', ip: '10.88.0.5' },
  createdAt: '2024-01-01T00:00:00.000Z',
};

export const network = {
  mode: 'bridge' as const,
  ip: '10.88.0.5',
  prefix: 16,
  gateway: '10.88.0.1',
  hostVeth: 'tsm12345678',
  bridge: 'tsm0',
  subnet: '10.88.0.0/16',
  leaseDir: '/run/tsmigrate/ipam/10.88.0.0_16',
  owner: { root: '/var/lib/tsmigrate', container: 'web-1' },
};

export const preflightReq: PreflightRequest = {
  name: 'web-1', config, network, cpuinfo: 'AAECAw==', memoryBytes: 1 << 20, upperBytes: 4096, leaseOwner: null, epoch: 3,
};

/** a well-formed signed statement (its signature is not checked over the wire, only by the peer) */
export const fakeSigned: SignedStatement = {
  statement: '{}',
  signature: { format: 'tsmigrate-signature/1', purpose: 'move-begin', key: `tsmigrate-ed25519 ${Buffer.alloc(32, 1).toString('base64')} test`, signature: Buffer.alloc(64, 2).toString('base64') },
};

export const beginReq: BeginRequest = {
  migrationId: MID, epoch: 3, name: 'web-1', config, network: null, leaseOwner: { root: '/var/lib/tsmigrate', container: 'web-1' },
  stdio: { stdout: 'pipe:[1234]', stderr: 'pipe:[1235]' }, criuOptions: { tcpEstablished: true, fileLocks: false }, signed: fakeSigned,
};

export const helloResult: HelloResult = {
  protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '0.1.0', hostname: 'peer', root: '/var/lib/tsmigrate',
  criu: { version: '3.19', ok: true }, cgroup: { kind: 'v2', controllers: ['cpu', 'memory'] }, memDirtyTrack: true, challenge: 'c'.repeat(64),
};

/** Read a stream to the end: bytes and sha256 (as a stream digest, "sha256:<hex>"). */
export async function digestStream(data: Readable, onChunk?: (n: number) => Promise<void>): Promise<StreamResult> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of data as AsyncIterable<Buffer>) {
    h.update(c);
    bytes += c.length;
    if (onChunk) await onChunk(c.length);
  }
  return { bytes, digest: `sha256:${h.digest('hex')}` };
}

export interface FakeAgent extends AgentApi {
  calls: Array<{ method: string; params: unknown }>;
}

/** An AgentApi that records its calls and answers valid results; stream methods digest their data. */
export function fakeAgent(overrides: Partial<AgentApi> = {}): FakeAgent {
  const calls: Array<{ method: string; params: unknown }> = [];
  const rec = (method: string, params: unknown): void => void calls.push({ method, params });
  // stores are real directories (no root needed): the store methods are served for real
  const stores = new StoreService();
  const base: AgentApi = {
    hello: async (p) => (rec('hello', p), helloResult),
    preflight: async (p) => (rec('preflight', p), { ok: false, problems: [{ check: 'disk', message: 'not enough space', fix: 'free some' }], needImage: true, freeBytes: 123 }),
    putImage: async (p, d) => (rec('putImage', p), digestStream(d)),
    begin: async (p) => (rec('begin', p), { ok: true as const }),
    putUpper: async (p, d) => (rec('putUpper', p), digestStream(d)),
    putLogs: async (p, d) => (rec('putLogs', p), digestStream(d)),
    putImages: async (p, d) => (rec('putImages', p), digestStream(d)),
    warm: async (p) => (rec('warm', p), { bytes: p.bytes, ms: 1, poolBytes: 0 }),
    probe: async (p, d) => (rec('probe', p), digestStream(d)),
    prepare: async (p) => (rec('prepare', p), { restoreMs: 12.5, initPid: 4242, setupMs: 2.5, criuMs: 9 }),
    commit: async (p) => (rec('commit', p), { resumeMs: 3 }),
    abort: async (p) => (rec('abort', p), { ok: true as const }),
    status: async (p) => (rec('status', p), { phase: 'prepared' }),
    containerStatus: async (p) => (rec('containerStatus', p), { status: 'absent', epochSeen: 0 }),
    storeOpen: (p) => (rec('storeOpen', p), stores.storeOpen(p)),
    storeLock: (p) => (rec('storeLock', p), stores.storeLock(p)),
    storeUnlock: (p) => (rec('storeUnlock', p), stores.storeUnlock(p)),
    storeHas: (p) => (rec('storeHas', p), stores.storeHas(p)),
    storePutChunks: (p, d) => (rec('storePutChunks', p), stores.storePutChunks(p, d)),
    storeGetChunks: (p) => (rec('storeGetChunks', p), stores.storeGetChunks(p)),
    storeListSnapshots: (p) => (rec('storeListSnapshots', p), stores.storeListSnapshots(p)),
    storeGetSnapshot: (p) => (rec('storeGetSnapshot', p), stores.storeGetSnapshot(p)),
    storePutSnapshot: (p, d) => (rec('storePutSnapshot', p), stores.storePutSnapshot(p, d)),
    storeDeleteSnapshot: (p) => (rec('storeDeleteSnapshot', p), stores.storeDeleteSnapshot(p)),
    storeGetIndex: (p) => (rec('storeGetIndex', p), stores.storeGetIndex(p)),
    storePutIndex: (p, d) => (rec('storePutIndex', p), stores.storePutIndex(p, d)),
    storeVerify: (p) => (rec('storeVerify', p), stores.storeVerify(p)),
    storeCollect: (p) => (rec('storeCollect', p), stores.storeCollect(p)),
    storeStats: (p) => (rec('storeStats', p), stores.storeStats(p)),
  };
  return Object.assign(base, overrides, { calls });
}

/** Speaks raw frames to a server: for sending what a real client never would. */
export class RawPeer {
  readonly frames: Frame[] = [];
  private waiters: Array<() => void> = [];
  ended = false;
  constructor(readonly sock: net.Socket) {
    const dec = new FrameDecoder();
    sock.on('data', (c: Buffer) => dec.write(c));
    dec.on('data', (f: Frame) => this.wake(() => this.frames.push(f)));
    dec.on('error', () => {});
    sock.on('close', () => this.wake(() => (this.ended = true)));
    sock.on('error', () => {});
  }
  private wake(f: () => void): void {
    f();
    for (const w of this.waiters.splice(0)) w();
  }
  send(msg: unknown): void {
    this.sock.write(encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify(msg))));
  }
  hello(protocol = PROTOCOL_VERSION): void {
    this.send({ type: 'call', id: 1, method: 'hello', params: { protocol, tool: 'test', version: '0' } });
  }
  /** The next JSON message from the server, or undefined when the connection closed first. */
  async next(): Promise<Record<string, unknown> | undefined> {
    for (;;) {
      const f = this.frames.shift();
      if (f) return parseJsonPayload(f.payload) as Record<string, unknown>;
      if (this.ended) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.waiters.push(r));
  }
}

/** A served fake agent and a connected client over a socket pair. */
export async function setup(impl: FakeAgent = fakeAgent(), copts: ConnectOptions = {}) {
  const pair = await socketPair();
  const reasons: Array<TsmError | undefined> = [];
  const server = serveAgent(pair.b, impl, { onClose: (r) => reasons.push(r) });
  const client = await connectAgent(pair.a, copts);
  return { ...pair, impl, server, client, reasons };
}

export async function raw(impl: FakeAgent = fakeAgent()) {
  const pair = await socketPair();
  const reasons: Array<TsmError | undefined> = [];
  const server = serveAgent(pair.b, impl, { onClose: (r) => reasons.push(r) });
  return { ...pair, impl, server, peer: new RawPeer(pair.a), reasons };
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof TsmError && e.code === code && (!re || re.test(e.message));
