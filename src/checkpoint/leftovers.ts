/**
 * What a checkpoint import or removal killed half-way (SIGKILL, a crash)
 * leaves in the checkpoint store: its temporary directory, named with the pid
 * of the process that made it (`.import-PID-HEX`, `.rm-ID-PID`). Removed by
 * the next import, export or checkpoint once that process is gone.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { alive } from '../state/lock.js';

/** The name of an import's temporary directory (swept when `pid` is gone). */
export function importTempName(pid: number, hex: string): string {
  return `.import-${pid}-${hex}`;
}

/** The pid in a leftover's name, or null when the name is not one of ours. */
export function leftoverPid(name: string): number | null {
  const m = /^\.import-(\d+)-[0-9a-f]+$/.exec(name) ?? /^\.rm-[a-z0-9][a-z0-9_.-]*-(\d+)$/.exec(name);
  const pid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** Remove leftovers under the store directory `dir` whose process is gone; returns their names. */
export async function sweepCheckpointLeftovers(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const pid = leftoverPid(name);
    if (pid === null || pid === process.pid || alive(pid)) continue;
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
