/**
 * How many cases a property test runs: a few hundred by default (seconds on
 * CI), more with TSMIGRATE_FUZZ_RUNS=N for a long local run.
 */
export function fuzzRuns(defaultRuns = 300): number {
  const n = Number(process.env['TSMIGRATE_FUZZ_RUNS']);
  return Number.isSafeInteger(n) && n > 0 ? n : defaultRuns;
}
