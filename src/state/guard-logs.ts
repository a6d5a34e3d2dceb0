import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { StatePaths } from './paths.js';

/**
 * Where a detached guard (a move's freeze watchdog, a held copy's time limit)
 * writes what it did: `<root>/migrations/guards/<id>.<kind>.log`, beside, not
 * among, the journals and records (readers of those take every file there).
 */
export function guardLogFile(paths: StatePaths, id: string, kind: 'move' | 'hold'): string {
  const dir = path.join(paths.root, 'migrations', 'guards');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return path.join(dir, `${id}.${kind}.log`);
}
