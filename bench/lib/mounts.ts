import { readFileSync } from 'node:fs';

/** Mount points at or below `dir` (a bench's cleanup never rm -rf's through one). */
export function mountsUnder(dir: string): string[] {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  return text.split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p === dir || p.startsWith(`${dir}/`));
}
