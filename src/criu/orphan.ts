import { promises as fs } from 'node:fs';
import { procStartTime, waitFor } from '../container/proc.js';
import { killGroup } from './watchdog.js';

/**
 * A CRIU run whose parent died (a `tsmigrate move` killed while CRIU dumped):
 * found by its images directory, waited for, killed at its deadline.
 */
export async function findCriuRuns(op: string, imagesDir: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(e)) continue;
    const argv = (await fs.readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const i = argv.indexOf('--images-dir');
    // the private build runs as its loader: the operation is among the arguments, not first
    if (i > 0 && argv[i + 1] === imagesDir && argv.includes(op)) out.push(Number(e));
  }
  return out;
}

/** Wait until those runs have exited; at `deadlineMs` kill their process groups (CRIU leads its own). Returns whether any had to be killed. */
export async function waitOrKill(pids: number[], deadlineMs: number): Promise<boolean> {
  const gone = async () => (await Promise.all(pids.map((p) => procStartTime(p)))).every((s) => s === undefined);
  if (await waitFor(gone, deadlineMs, 50)) return false;
  for (const p of pids) killGroup(p);
  await waitFor(gone, 5000, 50);
  return true;
}
