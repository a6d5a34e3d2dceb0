/**
 * The peer's restore run during the transfer (putImages with `restore`): the
 * image streamer serves the images directory to `criu restore --stream`, the
 * restore starts at the records' manifest (every image but the pages is whole
 * by then) and CRIU reads the pages as they arrive. The outcome is the same as
 * prepare's restore after the transfer: a tree held stopped, or nothing.
 *
 *   const early = await RestoreWhileReceiving.start(dir, streamer, (w) => restoreTree(..., stream: true, ...w));
 *   receiveRecords(data, dir, { dirExists: true, onManifest: early.manifest, onWritten: early.written });
 *   const { value, held, tailMs } = await early.settle(received);
 *
 * Whatever fails first is reported: the stream (the streamer then stops and
 * CRIU fails on an image cut short) or the restore (the rest of the stream is
 * then not waited for). A restore that succeeded is rolled back when the
 * stream did not arrive whole, or when what the streamer handed CRIU differs
 * from what arrived (an image changed at rest: transfer/image-sums.ts).
 */
import type { HeldContainer } from '../restore/tree.js';
import { TsmError } from '../errors/errors.js';
import { checkServed, type ImageSum } from '../transfer/image-sums.js';
import { serveImages, type ImageServer } from '../transfer/stream-serve.js';

/** how long the streamer may take to finish its sums once CRIU has exited */
const SUMS_WAIT_MS = 5000;

/** What the restore knows of the images when it starts: their total size, and when the last of them arrived. */
export interface ArrivingImages {
  imagesBytes: number;
  /** settles when the stream ended, whole or not */
  imagesComplete: Promise<void>;
}

export class RestoreWhileReceiving {
  private restoring: Promise<HeldContainer> | undefined;
  private begin!: (restoring: Promise<HeldContainer>) => void;
  /** resolves with the restore once it has started */
  private readonly begun = new Promise<Promise<HeldContainer>>((resolve) => (this.begin = resolve));
  private arrived!: () => void;
  private readonly imagesComplete = new Promise<void>((resolve) => (this.arrived = resolve));

  private constructor(
    private readonly srv: ImageServer,
    private readonly restore: (w: ArrivingImages) => Promise<HeldContainer>,
    private readonly onStart: () => void,
  ) {}

  /** Start serving `dir` (made, empty) with the streamer at `streamer`; `restore` runs at the manifest, after `onStart`. */
  static async start(dir: string, streamer: string, restore: (w: ArrivingImages) => Promise<HeldContainer>, onStart: () => void = () => undefined): Promise<RestoreWhileReceiving> {
    return new RestoreWhileReceiving(await serveImages(dir, streamer), restore, onStart);
  }

  /** LiveImageWriter's onManifest */
  readonly manifest = (files: ReadonlyArray<readonly [string, number]>): void => {
    if (this.restoring) return;
    this.srv.manifest(files);
    this.onStart();
    this.restoring = this.restore({ imagesBytes: files.reduce((a, [, size]) => a + size, 0), imagesComplete: this.imagesComplete });
    this.restoring.catch(() => undefined); // settle() reports it
    this.begin(this.restoring);
  };

  /** LiveImageWriter's onWritten */
  readonly written = (name: string, size: number): void => this.srv.written(name, size);

  /** Wait for the stream and the restore; see the file's comment. */
  async settle<T extends { files: ImageSum[] }>(received: Promise<T>): Promise<{ value: T; held: HeldContainer; tailMs: number; criuTailMs: number }> {
    received.catch(() => undefined);
    void received.finally(() => this.arrived()).catch(() => undefined);
    // a restore that fails while the stream goes on ends the wait at once
    const restoreFailed = this.begun.then((r) => r.then(() => new Promise<never>(() => undefined)));
    restoreFailed.catch(() => undefined);
    let value: T;
    try {
      value = await Promise.race([received, restoreFailed]);
    } catch (e) {
      this.srv.end(); // not whole: the streamer stops, and CRIU fails
      const held = await this.restoring?.catch(() => undefined);
      await held?.rollback().catch(() => undefined);
      this.srv.kill();
      await this.srv.done;
      throw e;
    }
    const tReceived = performance.now();
    this.srv.end();
    if (!this.restoring) {
      this.srv.kill();
      throw new TsmError('EPROTO', 'bad image stream: no manifest, so nothing could be restored while it arrived', {
        fix: 'install the same tsmigrate version on both hosts and retry',
      });
    }
    let held: HeldContainer | undefined;
    try {
      held = await this.restoring;
      // CRIU has exited: the streamer ends its last sums and exits (the wait is in tailMs)
      await this.verify(value.files);
      const round = (x: number) => Math.round(Math.max(0, x) * 10) / 10;
      return { value, held, tailMs: round(performance.now() - tReceived), criuTailMs: round(held.restoredAt - tReceived) };
    } catch (e) {
      await held?.rollback().catch(() => undefined);
      throw e;
    } finally {
      this.srv.kill();
      await this.srv.done;
    }
  }

  /** What the streamer handed CRIU against what arrived; throws on a difference or on sums it did not finish. */
  private async verify(arrived: ImageSum[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.srv.done.then((why) => why ?? 'ok'),
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), SUMS_WAIT_MS))),
    ]);
    clearTimeout(timer);
    if (exited !== 'ok') {
      throw new TsmError('EINTEGRITY', `what CRIU read could not be checked: the image streamer ${exited === 'timeout' ? `did not finish within ${SUMS_WAIT_MS / 1000} s` : `failed: ${exited}`}; nothing was resumed`, {
        fix: 'the move was rolled back and the container runs on the source; retry it',
      });
    }
    checkServed(this.srv.served(), arrived);
  }
}
