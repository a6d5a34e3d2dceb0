import type { Writable } from 'node:stream';
import type { Runtime } from '../runtime/context.js';
import { LogReader } from './log-reader.js';
import { loadView } from './view.js';

/**
 * Copy the container's log to `out`, its rotated files first; with follow, keep copying
 * (across rotations) until the container exits, the signal aborts or `out` is closed.
 */
export async function streamLogs(rt: Runtime, name: string, out: Writable, follow: boolean, signal?: AbortSignal): Promise<void> {
  await rt.store.config(name); // ENOENT_CONTAINER if unknown
  // a reader that went away (e.g. `logs | head`) ends the copy; its EPIPE may come after we return
  let closed = false;
  out.on('error', () => (closed = true));
  const reader = new LogReader(rt.paths.container(name), (b) => {
    if (!closed) out.write(b);
  });
  try {
    await reader.catchUp();
    if (!follow) return;
    while (!signal?.aborted && !closed) {
      const view = await loadView(rt, name).catch(() => undefined);
      const done = !view || !(view.status === 'running' || view.status === 'frozen' || view.status === 'creating');
      await reader.catchUp();
      if (done) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await reader.close();
  }
}
