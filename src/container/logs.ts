import { createReadStream, promises as fs } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Runtime } from '../runtime/context.js';
import { containerLogPath } from './run.js';
import { loadView } from './view.js';

/** Copy the container's log to `out`; with follow, keep copying until the container exits or the signal aborts. */
export async function streamLogs(rt: Runtime, name: string, out: Writable, follow: boolean, signal?: AbortSignal): Promise<void> {
  await rt.store.config(name); // ENOENT_CONTAINER if unknown
  const file = containerLogPath(rt, name);
  let pos = 0;
  const copy = async () => {
    const st = await fs.stat(file).catch(() => undefined);
    if (!st || st.size <= pos) return;
    await new Promise<void>((resolve, reject) => {
      const s = createReadStream(file, { start: pos, end: st.size - 1 });
      s.on('data', (d) => out.write(d));
      s.on('end', resolve);
      s.on('error', reject);
    });
    pos = st.size;
  };
  await copy();
  if (!follow) return;
  while (!signal?.aborted) {
    const view = await loadView(rt, name).catch(() => undefined);
    const done = !view || !(view.status === 'running' || view.status === 'frozen' || view.status === 'creating');
    await copy();
    if (done) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
