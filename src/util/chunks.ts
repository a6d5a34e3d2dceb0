import type { Readable } from 'node:stream';

/**
 * The chunks of a byte stream as they were pushed, without joining them.
 * (A Readable's own async iterator calls read(), which concatenates whatever
 * is buffered into one new Buffer: a copy of every byte of a bulk stream.)
 * Flowing mode, paused while `maxQueued` chunks wait for the consumer.
 * Ends with the stream; throws its error, or ERR_STREAM_PREMATURE_CLOSE when it
 * closes without ending; leaving the loop early destroys the stream.
 */
export async function* chunksOf(r: Readable, maxQueued = 4): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let ended = false;
  let failed: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (c: Buffer | string): void => {
    queue.push(typeof c === 'string' ? Buffer.from(c) : c);
    if (queue.length >= maxQueued) r.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (error: unknown): void => {
    failed ??= { error };
    notify();
  };
  const onClose = (): void => {
    if (!ended) failed ??= { error: Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }) };
    notify();
  };
  r.on('data', onData);
  r.on('end', onEnd);
  r.on('error', onError);
  r.on('close', onClose);
  try {
    for (;;) {
      const c = queue.shift();
      if (c !== undefined) {
        if (queue.length < maxQueued && r.isPaused() && !ended) r.resume();
        yield c;
        continue;
      }
      if (failed) throw failed.error;
      if (ended) return;
      await new Promise<void>((res) => (wake = res));
    }
  } finally {
    r.off('data', onData);
    r.off('end', onEnd);
    r.off('error', onError);
    r.off('close', onClose);
    if (!ended && !r.destroyed) r.destroy();
  }
}
