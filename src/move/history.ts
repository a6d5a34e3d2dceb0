import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { StatePaths } from '../state/paths.js';
import type { MoveReport } from './move.js';

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
