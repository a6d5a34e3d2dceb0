/**
 * The agent's RPC layer. serveAgent() runs on the destination (over
 * `tsmigrate agent --stdio`); connectAgent() (./client.ts) on the source.
 * Calls are served one at a time, in order; a stream method's impl gets a
 * Readable fed from the DATA frames of its stream.
 */
import { type Duplex, Readable } from 'node:stream';
import { TsmError } from '../../errors/errors.js';
import { type Logger, silentLogger } from '../../util/logger.js';
import { type AgentApi, PROTOCOL_VERSION } from '../api.js';
import { ROLES, type Role, roleRefusal } from '../roles.js';
import { type AgentMethod, methodSpec, preview } from '../schema.js';
import { MAX_DATA_PAYLOAD, protocolError } from './frames.js';
import { type CallMsg, callMsg, lostError, oneLine, toWireError } from './messages.js';
import { Wire } from './wire.js';

export { connectAgent, type AgentClient, type ConnectOptions } from './client.js';

export interface ServeOptions {
  logger?: Logger;
  /** once, when the connection ends: undefined for the peer's orderly EOF, else why */
  onClose?: (reason: TsmError | undefined) => void;
  /** what this connection may call (../roles.ts): from the agent's argv and its host's config, never from the client; default every role */
  roles?: readonly Role[];
  /** the agent could not start as its host configured it: every call gets this error, then the connection closes */
  refuse?: TsmError;
}

export interface AgentServer {
  /** resolves when the connection is closed and the call in progress (if any) has settled */
  closed: Promise<void>;
  close(): void;
  /** bytes the server holds for the peer: frame decoder + unread stream data */
  bufferedBytes(): number;
}

/** Calls the peer may queue while one is being served. */
export const MAX_QUEUED_CALLS = 16;
const MAX_OPEN_STREAMS = 64;
const VERSION_FIX = 'install the same tsmigrate version on both hosts';

/** The Readable a stream method's impl receives: fed by DATA frames, paused transport while it is full. */
class Inbound extends Readable {
  discard = false;
  constructor(private readonly wire: Wire, readonly id: number) {
    super({ highWaterMark: MAX_DATA_PAYLOAD });
    // its consumer (if it has started) hears errors through its own listeners; no consumer must not crash the agent
    this.on('error', () => {});
  }
  override _read(): void {
    this.wire.unblock(this.id);
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.wire.unblock(this.id);
    cb(err);
  }
}

interface Queued {
  call: CallMsg;
  input: Inbound | undefined;
}

export function serveAgent(transport: Duplex, impl: AgentApi, opts: ServeOptions = {}): AgentServer {
  const logger = opts.logger ?? silentLogger;
  const roles = opts.roles ?? ROLES;
  const queue: Queued[] = [];
  const streams = new Map<number, Inbound>();
  let lastStream = 0;
  let greeted = false;
  let running = false;
  let wireClosed = false;
  let current: Inbound | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const settle = (): void => {
    if (wireClosed && !running) resolveClosed();
  };

  const openStream = (id: number): Inbound => {
    const s = streams.get(id);
    if (!s) throw protocolError(`a frame for stream ${id}, which is not open`);
    return s;
  };

  const wire: Wire = new Wire(
    transport,
    {
      message(raw) {
        const call = callMsg(raw, 'call');
        if (queue.length >= MAX_QUEUED_CALLS) throw protocolError(`more than ${MAX_QUEUED_CALLS} calls queued`);
        let input: Inbound | undefined;
        if (call.stream !== undefined) {
          if (call.stream <= lastStream) throw protocolError(`stream id ${call.stream} is reused or out of order`);
          if (streams.size >= MAX_OPEN_STREAMS) throw protocolError(`more than ${MAX_OPEN_STREAMS} streams open`);
          lastStream = call.stream;
          input = new Inbound(wire, call.stream);
          streams.set(call.stream, input);
        }
        queue.push({ call, input });
        void run();
      },
      data(id, payload) {
        const s = openStream(id);
        if (s.discard || s.destroyed) return;
        if (!s.push(payload)) wire.block(id);
      },
      end(id) {
        const s = openStream(id);
        streams.delete(id);
        if (!s.discard && !s.destroyed) s.push(null);
      },
      abort(id, err) {
        const s = openStream(id);
        streams.delete(id);
        if (!s.discard) s.destroy(err);
      },
      closed(reason) {
        wireClosed = true;
        const err = reason ?? lostError('the peer closed the connection');
        for (const s of streams.values()) if (!s.discard) s.destroy(err);
        streams.clear();
        queue.length = 0;
        if (reason) logger.warn(`agent connection closed: ${reason.message}`);
        try {
          opts.onClose?.(reason);
        } finally {
          settle();
        }
      },
    },
    logger,
  );

  async function run(): Promise<void> {
    if (running) return;
    running = true;
    try {
      for (let q = queue.shift(); q && !wire.closed; q = queue.shift()) {
        await serve(q);
        // a peer that does not read its answers gets no more of them
        if (transport.writableNeedDrain) await wire.writer.drained().catch(() => {});
      }
    } finally {
      running = false;
      settle();
    }
  }

  async function serve({ call, input }: Queued): Promise<void> {
    let closeAfter = false;
    current = input;
    try {
      if (opts.refuse) {
        closeAfter = true;
        throw opts.refuse;
      }
      if (!greeted && call.method !== 'hello') {
        closeAfter = true;
        throw protocolError(`the first call must be hello, not ${preview(call.method)}`);
      }
      const spec = methodSpec(call.method);
      if (!spec) throw new TsmError('EPROTO', `unknown method ${preview(call.method)}`, { fix: VERSION_FIX });
      // before its params are read or anything is done: one refusal, nothing changed
      const refused = roleRefusal(call.method, roles);
      if (refused) throw refused;
      if (spec.stream !== (input !== undefined)) {
        throw new TsmError('EPROTO', `${call.method} ${spec.stream ? 'needs' : 'takes no'} data stream`, { fix: VERSION_FIX });
      }
      const params = spec.params(call.params, `${call.method}.params`);
      if (call.method === 'hello') {
        const peer = (params as { protocol: number }).protocol;
        if (peer !== PROTOCOL_VERSION) {
          closeAfter = true;
          throw new TsmError('EPROTO', `protocol version mismatch: peer speaks ${peer}, this tsmigrate speaks ${PROTOCOL_VERSION}`, { fix: VERSION_FIX });
        }
      }
      const fn = impl[call.method as AgentMethod] as (p: unknown, data?: Readable) => Promise<unknown>;
      const value = await (input ? fn.call(impl, params, input) : fn.call(impl, params));
      let checked: unknown;
      try {
        checked = spec.result(value, `${call.method}.result`);
      } catch (e) {
        throw new TsmError('EINTERNAL', `the agent's ${call.method} result is invalid: ${(e as Error).message}`, {
          fix: 'report a tsmigrate bug',
        });
      }
      if (call.method === 'hello') greeted = true;
      reply(call, { type: 'result', id: call.id, value: checked });
    } catch (e) {
      if (!(e instanceof TsmError)) logger.warn(`agent: ${call.method} failed: ${oneLine(e instanceof Error ? (e.stack ?? e.message) : String(e), 4000)}`);
      else logger.debug(`agent: ${call.method} failed: ${e.message}`);
      reply(call, { type: 'error', id: call.id, ...toWireError(e) });
    } finally {
      // the rest of a stream the impl did not read is dropped as it arrives
      if (input && streams.get(input.id) === input) {
        input.discard = true;
        input.destroy();
      }
      current = undefined;
    }
    if (closeAfter) wire.close(opts.refuse ?? protocolError('the peer did not start with a valid hello'));
  }

  function reply(call: CallMsg, msg: object): void {
    if (wire.closed) return;
    try {
      wire.writer.json(msg, `${call.method} result`);
    } catch (e) {
      if (wire.closed) return;
      wire.writer.json({ type: 'error', id: call.id, ...toWireError(e) });
    }
  }

  return {
    closed,
    close: () => wire.close(undefined),
    bufferedBytes: () => {
      const open = new Set([...streams.values(), ...(current ? [current] : [])]);
      return wire.bufferedBytes + [...open].reduce((n, s) => n + s.readableLength, 0);
    },
  };
}
