/**
 * One end of an agent connection: decodes frames from the transport, hands
 * them to its owner (client or server), writes frames back, and closes once.
 *
 * Receive-side back-pressure: when a bulk stream's consumer is slow, its owner
 * calls block(id) and the transport is paused (an SSH channel then stops
 * granting window, a socket stops reading), until unblock(id) from _read().
 */
import type { Duplex } from 'node:stream';
import { TsmError } from '../../errors/errors.js';
import { type Logger, silentLogger } from '../../util/logger.js';
import { type Frame, FrameDecoder, FrameKind, FrameWriter, parseJsonPayload, protocolError } from './frames.js';
import { fromWireError, lostError, toWireError, wireError } from './messages.js';

export interface WireHandlers {
  message(msg: unknown): void;
  data(stream: number, payload: Buffer): void;
  end(stream: number): void;
  abort(stream: number, err: TsmError): void;
  /** exactly once; `reason` is undefined for an orderly end (the peer's EOF or our close()) */
  closed(reason: TsmError | undefined): void;
}

/** How long a closed wire keeps reading (and discarding) so our last frames reach the peer. */
const LINGER_MS = 2000;

export class Wire {
  readonly writer: FrameWriter;
  private readonly decoder = new FrameDecoder();
  private readonly blocked = new Set<number>();
  private pausedByUs = false;
  private closeReason: TsmError | undefined;
  private isClosed = false;
  private readonly whenClosed: Promise<void>;
  private markTransportClosed!: () => void;

  constructor(
    private readonly transport: Duplex,
    private readonly handlers: WireHandlers,
    private readonly logger: Logger = silentLogger,
  ) {
    this.writer = new FrameWriter(transport, () => this.closeReason ?? lostError('the connection is closed'));
    this.whenClosed = new Promise((resolve) => (this.markTransportClosed = resolve));
    this.decoder.on('data', (f: Frame) => this.onFrame(f));
    this.decoder.on('error', (e: TsmError) => this.fail(e));
    transport.on('data', this.onData);
    transport.on('end', () => this.close(undefined));
    transport.on('error', (e: Error) => this.close(lostError(e.message, e)));
    transport.on('close', () => {
      this.markTransportClosed();
      this.close(lostError('the transport closed'));
    });
    if (transport.destroyed) queueMicrotask(() => this.close(lostError('the transport was already closed')));
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Resolves when the transport itself has closed (after close(), within LINGER_MS). */
  get transportClosed(): Promise<void> {
    return this.whenClosed;
  }

  /** bytes held by the frame decoder (at most one partial frame plus one transport chunk) */
  get bufferedBytes(): number {
    return this.decoder.bufferedBytes;
  }

  /** true while the transport is paused for a slow stream consumer */
  get paused(): boolean {
    return this.pausedByUs;
  }

  block(stream: number): void {
    this.blocked.add(stream);
    if (!this.pausedByUs && !this.isClosed) {
      this.pausedByUs = true;
      this.transport.pause();
    }
  }

  unblock(stream: number): void {
    if (!this.blocked.delete(stream) || this.blocked.size > 0 || !this.pausedByUs) return;
    this.pausedByUs = false;
    if (!this.isClosed) this.transport.resume();
  }

  /** A protocol violation seen here: tell the peer (best effort), then close. */
  fail(err: TsmError): void {
    if (this.isClosed) return;
    this.logger.warn(`agent connection: ${err.message}`);
    try {
      if (this.writer.usable) this.writer.json({ type: 'error', id: 0, ...toWireError(err) });
    } catch {
      /* the peer is gone or the error does not fit: closing says enough */
    }
    this.close(err);
  }

  /**
   * Close once: the owner hears closed(reason); our side of the transport is
   * ended (frames already written still go out), what the peer still sends is
   * read and dropped, and the transport is destroyed after LINGER_MS at most.
   */
  close(reason: TsmError | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason ?? lostError('the connection was closed');
    this.decoder.removeAllListeners('data');
    this.decoder.on('error', () => {});
    this.decoder.destroy();
    this.transport.off('data', this.onData);
    this.transport.on('data', () => {});
    this.transport.on('error', () => {});
    try {
      this.handlers.closed(reason);
    } finally {
      if (!this.transport.destroyed) {
        this.transport.resume();
        this.transport.end();
        const t = setTimeout(() => this.transport.destroy(), LINGER_MS);
        t.unref();
        this.transport.once('close', () => clearTimeout(t));
        this.transport.once('finish', () => {
          if (this.transport.readableEnded) this.transport.destroy();
        });
        this.transport.once('end', () => {
          if (this.transport.writableFinished) this.transport.destroy();
        });
      }
    }
  }

  /** Close now, without lingering (the peer is not worth waiting for). */
  destroy(reason: TsmError | undefined): void {
    this.close(reason);
    this.transport.destroy();
  }

  private readonly onData = (chunk: Buffer | string): void => {
    this.decoder.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  };

  private onFrame(f: Frame): void {
    if (this.isClosed) return;
    try {
      switch (f.kind) {
        case FrameKind.JSON:
          this.handlers.message(parseJsonPayload(f.payload));
          break;
        case FrameKind.DATA:
          this.handlers.data(f.stream, f.payload);
          break;
        case FrameKind.END:
          this.handlers.end(f.stream);
          break;
        case FrameKind.ABORT:
          this.handlers.abort(f.stream, fromWireError(wireError(parseJsonPayload(f.payload), 'abort'), 'the sender aborted the stream: '));
          break;
      }
    } catch (e) {
      this.fail(e instanceof TsmError ? e : protocolError(e instanceof Error ? e.message : String(e)));
    }
  }
}
