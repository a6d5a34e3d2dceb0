/**
 * The source's side of the agent protocol: an AgentApi whose calls go over a
 * byte Duplex to `serveAgent` on the peer. Calls are sent one at a time (the
 * agent serves them in order anyway; one stream in flight keeps back-pressure
 * simple). A stream method's `data` is consumed or destroyed by the client.
 */
import { readFileSync } from 'node:fs';
import type { Duplex, Readable } from 'node:stream';
import { TsmError } from '../../errors/errors.js';
import { type Logger, silentLogger } from '../../util/logger.js';
import { type AgentApi, type HelloResult, PROTOCOL_VERSION } from '../api.js';
import { type AgentMethod, agentSpec } from '../schema.js';
import { FrameKind, jsonPayload, protocolError } from './frames.js';
import { type ErrorMsg, type ResultMsg, type WireError, fromWireError, lostError, oneLine, replyMsg } from './messages.js';
import { chunksOf } from '../../util/chunks.js';
import { onPeer } from '../../criu/kept-logs.js';
import { Wire } from './wire.js';

export interface ConnectOptions {
  /** per plain call (default 60 s); on expiry the call rejects with EPEER and the connection is closed */
  timeoutMs?: number;
  /** per stream call, transfer included (default: none) */
  streamTimeoutMs?: number;
  /** aborting closes the connection; pending calls reject */
  signal?: AbortSignal;
  logger?: Logger;
  /** what this side says in its hello (default: tsmigrate and its package version) */
  tool?: string;
  version?: string;
  /** the peer's name here (hosts config): a CRIU log its errors cite is then said to be on that host */
  peerName?: string;
}

export interface AgentClient extends AgentApi {
  /** what the peer said in its hello */
  readonly peer: HelloResult;
  readonly closed: boolean;
  /** ends the connection; pending calls reject with EPEER */
  close(): Promise<void>;
}

export const DEFAULT_CALL_TIMEOUT_MS = 60_000;

type Params<K extends AgentMethod> = Parameters<AgentApi[K]>[0];
type Result<K extends AgentMethod> = Awaited<ReturnType<AgentApi[K]>>;

interface Pending {
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  /** stops the data pump when the answer comes first */
  answered?: () => void;
}

class Connection {
  readonly wire: Wire;
  private nextId = 1;
  private nextStream = 1;
  private readonly pending = new Map<number, Pending>();
  private chain: Promise<unknown> = Promise.resolve();
  private closeError: TsmError | undefined;
  private readonly onAbort = (): void => {
    const r: unknown = this.opts.signal?.reason;
    this.wire.destroy(r instanceof TsmError ? r : lostError('cancelled'));
  };

  constructor(transport: Duplex, private readonly opts: ConnectOptions) {
    const noStreams = (id: number): never => {
      throw protocolError(`the agent sent a frame on stream ${id}; it never sends streams`);
    };
    this.wire = new Wire(
      transport,
      { message: (raw) => this.onReply(replyMsg(raw, 'reply')), data: noStreams, end: noStreams, abort: noStreams, closed: (r) => this.onClosed(r) },
      opts.logger ?? silentLogger,
    );
    if (opts.signal?.aborted) queueMicrotask(this.onAbort);
    else opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Queue a call behind the previous one; resolves with the validated result. */
  call<K extends AgentMethod>(method: K, params: Params<K>, data?: Readable): Promise<Result<K>> {
    const go = (): Promise<Result<K>> => this.send(method, params, data) as Promise<Result<K>>;
    const p = this.chain.then(go, go);
    this.chain = p.catch(() => {});
    return p;
  }

  private async send(method: AgentMethod, params: unknown, data: Readable | undefined): Promise<unknown> {
    const spec = agentSpec[method];
    let pumping = false;
    try {
      if (this.wire.closed) throw this.closeError ?? lostError('the connection is closed');
      if (spec.stream && !data) throw new TsmError('EINVAL_ARG', `${method} needs a data stream`, { fix: 'pass a Readable as the second argument' });
      const p = spec.params(params, `${method}.params`);
      const id = this.nextId++;
      const stream = spec.stream ? this.nextStream++ : undefined;
      this.wire.writer.json(stream === undefined ? { type: 'call', id, method, params: p } : { type: 'call', id, method, params: p, stream }, `${method} call`);
      const answer = new Promise<unknown>((resolve, reject) => {
        const ms = spec.stream ? this.opts.streamTimeoutMs : (this.opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
        const timer = ms === undefined || ms <= 0 ? undefined : setTimeout(() => this.timeout(id, ms), ms);
        this.pending.set(id, { method, resolve, reject, timer });
      });
      if (stream !== undefined && data) {
        pumping = true;
        void this.pump(id, stream, data);
      }
      return spec.result(await answer, `${method}.result`);
    } catch (e) {
      if (data && !pumping && !data.destroyed) data.destroy();
      throw e;
    }
  }

  /** DATA frames from `data` (waiting for 'drain'), then END; ABORT when the source fails or the answer comes first. */
  private async pump(id: number, stream: number, data: Readable): Promise<void> {
    let answered = false;
    const entry = this.pending.get(id);
    if (entry) {
      entry.answered = () => {
        answered = true;
        data.destroy();
      };
    }
    const w = this.wire.writer;
    try {
      for await (const chunk of chunksOf(data)) {
        if (answered || this.wire.closed) break;
        await w.data(stream, chunk);
      }
      if (this.wire.closed) return;
      if (answered) w.frame(FrameKind.ABORT, stream, jsonPayload({ code: 'EPEER', message: 'the agent answered before the stream ended' }));
      else w.frame(FrameKind.END, stream);
    } catch (e) {
      if (this.wire.closed) return;
      const msg = oneLine(e instanceof Error ? e.message : String(e));
      const why: WireError = answered
        ? { code: 'EPEER', message: 'the agent answered before the stream ended' }
        : { code: e instanceof TsmError ? e.code : 'EIO', message: `the source's data failed: ${msg}` };
      try {
        w.frame(FrameKind.ABORT, stream, jsonPayload(why));
      } catch {
        /* the connection is going away; its close rejects the call */
      }
      if (!answered) this.settle(id, undefined, e);
    }
  }

  private timeout(id: number, ms: number): void {
    const p = this.pending.get(id);
    if (!p) return;
    const err = new TsmError('EPEER', `the peer agent did not answer ${p.method} within ${ms / 1000} s; the connection was closed`, {
      fix: 'check the peer host (load, disk, criu) and retry; raise the timeout if the peer is just slow',
    });
    this.settle(id, undefined, err);
    this.wire.close(err);
  }

  private settle(id: number, value: unknown, err?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.answered?.();
    if (err === undefined) p.resolve(value);
    else p.reject(err);
  }

  private onReply(msg: ResultMsg | ErrorMsg): void {
    if (msg.type === 'error' && msg.id === 0) {
      this.wire.close(fromWireError(msg, 'the peer agent closed the connection: '));
      return;
    }
    if (!this.pending.has(msg.id)) {
      // a late answer to a call given up on (timed out, or its source failed) is dropped
      if (msg.id >= this.nextId) throw protocolError(`an answer to call ${msg.id}, which was never made`);
      return;
    }
    if (msg.type === 'result') this.settle(msg.id, msg.value);
    else this.settle(msg.id, undefined, fromWireError(this.opts.peerName === undefined ? msg : namePeer(msg, this.opts.peerName)));
  }

  private onClosed(reason: TsmError | undefined): void {
    this.closeError = reason ?? lostError('the peer closed the connection');
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, this.closeError);
    this.opts.signal?.removeEventListener('abort', this.onAbort);
  }

  async close(): Promise<void> {
    this.wire.close(new TsmError('EPEER', 'the connection to the peer agent was closed by this side', { fix: 'open a new connection' }));
    await this.wire.transportClosed;
  }
}

/** Open the protocol: hello both ways (versions must match), then an AgentApi over `transport`. */
export async function connectAgent(transport: Duplex, opts: ConnectOptions = {}): Promise<AgentClient> {
  const c = new Connection(transport, opts);
  let peer: HelloResult;
  try {
    peer = await c.call('hello', { protocol: PROTOCOL_VERSION, tool: opts.tool ?? 'tsmigrate', version: opts.version ?? ownVersion() });
  } catch (e) {
    c.wire.destroy(undefined);
    throw fromPeerView(e);
  }
  if (peer.protocol !== PROTOCOL_VERSION) {
    c.wire.destroy(undefined);
    throw mismatch(peer.protocol, PROTOCOL_VERSION);
  }
  return {
    peer,
    get closed() {
      return c.wire.closed;
    },
    close: () => c.close(),
    hello: (p) => c.call('hello', p),
    preflight: (p) => c.call('preflight', p),
    putImage: (p, data) => c.call('putImage', p, data),
    begin: (p) => c.call('begin', p),
    putUpper: (p, data) => c.call('putUpper', p, data),
    putLogs: (p, data) => c.call('putLogs', p, data),
    putImages: (p, data) => c.call('putImages', p, data),
    probe: (p, data) => c.call('probe', p, data),
    prepare: (p) => c.call('prepare', p),
    warm: (p) => c.call('warm', p),
    commit: (p) => c.call('commit', p),
    abort: (p) => c.call('abort', p),
    status: (p) => c.call('status', p),
    containerStatus: (p) => c.call('containerStatus', p),
    storeOpen: (p) => c.call('storeOpen', p),
    storeLock: (p) => c.call('storeLock', p),
    storeUnlock: (p) => c.call('storeUnlock', p),
    storeHas: (p) => c.call('storeHas', p),
    storePutChunks: (p, data) => c.call('storePutChunks', p, data),
    storeGetChunks: (p) => c.call('storeGetChunks', p),
    storeListSnapshots: (p) => c.call('storeListSnapshots', p),
    storeGetSnapshot: (p) => c.call('storeGetSnapshot', p),
    storePutSnapshot: (p, data) => c.call('storePutSnapshot', p, data),
    storeDeleteSnapshot: (p) => c.call('storeDeleteSnapshot', p),
    storeGetIndex: (p) => c.call('storeGetIndex', p),
    storePutIndex: (p, data) => c.call('storePutIndex', p, data),
    storeVerify: (p) => c.call('storeVerify', p),
    storeCollect: (p) => c.call('storeCollect', p),
    storeStats: (p) => c.call('storeStats', p),
  };
}

function mismatch(peer: number, ours: number): TsmError {
  return new TsmError('EPROTO', `protocol version mismatch: peer speaks ${peer}, this tsmigrate speaks ${ours}`, {
    fix: 'install the same tsmigrate version on both hosts',
  });
}

/** The agent words a version mismatch from its side; say it from ours. */
function fromPeerView(e: unknown): unknown {
  const m = e instanceof TsmError && e.code === 'EPROTO' ? /^protocol version mismatch: peer speaks (\d+), this tsmigrate speaks (\d+)$/.exec(e.message) : null;
  return m ? mismatch(Number(m[2]), Number(m[1])) : e;
}

let cachedVersion: string | undefined;
function ownVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cachedVersion = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

/** A peer's error with its CRIU log notes naming the peer (kept-logs.ts). */
function namePeer<T extends WireError>(w: T, host: string): T {
  return { ...w, message: onPeer(w.message, host), ...(w.fix !== undefined ? { fix: onPeer(w.fix, host) } : {}) };
}
