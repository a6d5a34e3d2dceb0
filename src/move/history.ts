import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { StatePaths } from '../state/paths.js';
import type { PastMove } from './estimate.js';
import type { MoveReport } from './report.js';

const file = (p: StatePaths) => path.join(p.root, 'migrations', 'history.jsonl');

export async function appendHistory(p: StatePaths, r: MoveReport): Promise<void> {
  await fs.mkdir(path.dirname(file(p)), { recursive: true, mode: 0o700 });
  await fs.appendFile(file(p), JSON.stringify(r) + '\n', { mode: 0o600 });
}

export async function readHistory(p: StatePaths): Promise<MoveReport[]> {
  const text = await fs.readFile(file(p), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as MoveReport];
    } catch {
      return [];
    }
  });
}

/** What the downtime estimate learns from: this host's committed moves. */
export async function pastMoves(p: StatePaths): Promise<PastMove[]> {
  return (await readHistory(p)).flatMap((r) => {
    if (!r?.downtime || !r.restoreParts || !(r.bytes?.imagesTar > 0)) return [];
    const d = r.downtime;
    const overheadMs = d.freezeMs + d.resumeMs + Math.max(0, r.restoreParts.setupMs);
    return [{ memoryBytes: r.bytes.imagesTar, dumpMs: d.dumpMs, criuRestoreMs: r.restoreParts.criuMs, overheadMs }];
  });
}
