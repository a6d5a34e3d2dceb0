/** Small timing and statistics helpers for the benchmarks. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(xs: readonly number[]): Summary {
  return { median: round1(median(xs)), min: round1(Math.min(...xs)), max: round1(Math.max(...xs)), runs: xs.map(round1) };
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;

export const ms = (x: number): string => `${Math.round(x)} ms`;

export function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/** A plain-text table with right-aligned columns. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('-|-'), ...rows.map(line)].join('\n');
}

/**
 * SIGINT/SIGTERM stop the bench after the current step (so it can clean up);
 * a second signal quits at once.
 */
export function interruptible(): AbortController {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130);
    console.error(`\n${sig}: stopping after the current step and cleaning up (again to quit at once)`);
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  return ac;
}
