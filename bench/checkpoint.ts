/**
 * Checkpoint benchmark: how long a `tsmigrate checkpoint --leave-running`
 * keeps a container frozen (F) and takes in all (T), against a plain
 * `criu dump --leave-running` of the same container to tmpfs (B).
 *
 *   node dist/bench/checkpoint.js [--sizes 64,256,1024] [--runs 3] [--warmup 1]
 *
 * For each size a Debian container holds SIZE MiB of heap-like memory; B and
 * F runs alternate (B, F, B, F, ...) so drift hits both alike; medians are
 * reported. Needs root. Results go to bench/results/checkpoint-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkpointContainer } from '../src/checkpoint/checkpoint.js';
import { CheckpointStore } from '../src/checkpoint/store.js';
import { removeContainer } from '../src/container/remove.js';
import { locateCriu } from '../src/criu/binary.js';
import { importImage } from '../src/image/store.js';
import { createRuntime, type Runtime } from '../src/runtime/context.js';
import { plainDump } from './lib/baseline.js';
import { interruptible, median, mib, ms, round1, sleep, summarize, table, type Summary } from './lib/timing.js';
import { residentMiB, startWorkload } from './lib/workload.js';

const GOAL = 1.25;
const DEBIAN = '/var/cache/tsmigrate/images/debian/rootfs';
const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/results');

interface SizeResult {
  sizeMiB: number;
  residentMiB: number;
  plain: Summary;
  frozen: Summary;
  total: Summary;
  dump: Summary;
  snapshot: Summary;
  pack: Summary;
  checkpointBytes: Summary;
  plainImageBytes: Summary;
  loadavg: number[];
  frozenRatio: number;
  totalRatio: number;
  /** noise checks: min F / min B, and the median of the per-pair ratios F_i/B_i */
  bestFrozenRatio: number;
  pairedFrozenRatio: number;
  pass: boolean;
}

function options(): { sizes: number[]; runs: number; warmup: number } {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '64,256,1024' }, runs: { type: 'string', default: '3' }, warmup: { type: 'string', default: '1' } } });
  const sizes = values.sizes.split(',').map(Number);
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  if (!sizes.every((s) => Number.isInteger(s) && s > 0) || !(Number.isInteger(runs) && runs > 0) || !(Number.isInteger(warmup) && warmup >= 0)) {
    throw new Error('usage: checkpoint.js [--sizes 64,256,1024] [--runs 3] [--warmup 1]');
  }
  return { sizes, runs, warmup };
}

/** Let writeback from the previous run (pack writes to disk) finish before timing the next. */
async function settle(): Promise<void> {
  execFileSync('sync');
  await sleep(500);
}

async function benchSize(rt: Runtime, shm: string, sizeMiB: number, o: { runs: number; warmup: number }, signal: AbortSignal, started: string[]): Promise<SizeResult> {
  const criu = await locateCriu(process.env);
  const store = new CheckpointStore(rt.paths, rt.signing);
  const name = `bench-${sizeMiB}`;
  started.push(name);
  process.stdout.write(`${sizeMiB} MiB: starting the workload ... `);
  const w = await startWorkload(rt, name, sizeMiB, signal);
  const resident = await residentMiB(rt, name);
  console.log(`ready (resident ${resident} MiB)`);

  const col = { plain: [] as number[], plainBytes: [] as number[], frozen: [] as number[], total: [] as number[], dump: [] as number[], snapshot: [] as number[], pack: [] as number[], size: [] as number[], load: [] as number[] };
  for (let i = -o.warmup; i < o.runs; i++) {
    const label = i < 0 ? 'warmup' : `run ${i + 1}/${o.runs}`;
    await settle();
    signal.throwIfAborted();
    const b = await plainDump(criu, w, shm);
    await settle();
    signal.throwIfAborted();
    const { manifest: m } = await checkpointContainer(rt, { name, stop: false, tcpEstablished: false, fileLocks: false });
    await store.remove(m.id);
    const t = m.timings;
    console.log(`  ${label}: B ${ms(b.ms)}, F ${ms(t.frozenMs)} (dump ${ms(t.dumpMs)}, snapshot ${ms(t.snapshotMs)}), T ${ms(t.totalMs)}`);
    if (i < 0) continue;
    col.plain.push(b.ms);
    col.plainBytes.push(b.imageBytes);
    col.frozen.push(t.frozenMs);
    col.total.push(t.totalMs);
    col.dump.push(t.dumpMs);
    col.snapshot.push(t.snapshotMs);
    col.pack.push(t.packMs);
    col.size.push(m.blobs.criu.size + m.blobs.upper.size);
    col.load.push(round1(os.loadavg()[0]!));
  }
  await removeContainer(rt, name, true);
  started.splice(started.indexOf(name), 1);

  const r = {
    sizeMiB,
    residentMiB: resident,
    plain: summarize(col.plain),
    frozen: summarize(col.frozen),
    total: summarize(col.total),
    dump: summarize(col.dump),
    snapshot: summarize(col.snapshot),
    pack: summarize(col.pack),
    checkpointBytes: summarize(col.size),
    plainImageBytes: summarize(col.plainBytes),
    /** 1-minute load average after each B/F pair: other work on the host adds noise */
    loadavg: col.load,
  };
  const frozenRatio = ratio(r.frozen.median, r.plain.median);
  const totalRatio = ratio(r.total.median, r.plain.median);
  const bestFrozenRatio = ratio(r.frozen.min, r.plain.min);
  const pairedFrozenRatio = ratio(median(col.frozen.map((f, i) => f / col.plain[i]!)), 1);
  return { ...r, frozenRatio, totalRatio, bestFrozenRatio, pairedFrozenRatio, pass: frozenRatio <= GOAL };
}

const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;

function report(results: SizeResult[]): string {
  const head = ['size', 'plain criu dump (B)', 'tsmigrate frozen (F)', 'F/B', 'tsmigrate total (T)', 'T/B', 'dump', 'snapshot', 'pack', 'checkpoint size'];
  const rows = results.map((r) => [
    `${r.sizeMiB} MiB`,
    ms(r.plain.median),
    ms(r.frozen.median),
    r.frozenRatio.toFixed(2),
    ms(r.total.median),
    r.totalRatio.toFixed(2),
    ms(r.dump.median),
    ms(r.snapshot.median),
    ms(r.pack.median),
    mib(r.checkpointBytes.median),
  ]);
  const verdicts = results.map((r) => `${r.sizeMiB} MiB: frozen ratio F/B = ${r.frozenRatio.toFixed(2)} (goal <= ${GOAL}): ${r.pass ? 'PASS' : 'FAIL'}`);
  const noise = results.map(
    (r) => `${r.sizeMiB} MiB: B ${Math.round(r.plain.min)}-${Math.round(r.plain.max)} ms, F ${Math.round(r.frozen.min)}-${Math.round(r.frozen.max)} ms; ` +
      `best-of-runs F/B = ${r.bestFrozenRatio.toFixed(2)}, median of paired F/B = ${r.pairedFrozenRatio.toFixed(2)}; load ${r.loadavg.join(', ')}`,
  );
  return [table(head, rows), '', ...verdicts, '', 'noise check (min-max; other load on the host widens these):', ...noise].join('\n');
}

async function main(): Promise<number> {
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('the checkpoint benchmark needs root');
  // CRIU, cp and the container inherit this: less disturbance from other work on a shared host, for B and F alike
  os.setPriority(-10);
  const ac = interruptible();

  const root = mkdtempSync(path.join(os.tmpdir(), 'tsm-bench-'));
  const shm = mkdtempSync('/dev/shm/tsm-bench-');
  // tsmigrate's staging (where CRIU writes while frozen) on the same tmpfs as the baseline's, removed with it
  process.env['TSMIGRATE_STAGING'] = path.join(shm, 'staging');
  const rt = createRuntime({ root });
  const started: string[] = [];
  try {
    const criu = await locateCriu(process.env);
    console.log(`CRIU ${criu.versionText}, kernel ${os.release()}, ${os.cpus().length} CPUs; sizes ${o.sizes.join(', ')} MiB, ${o.runs} runs (+${o.warmup} warmup) each`);
    await importImage(rt.paths, 'debian', DEBIAN);
    const results: SizeResult[] = [];
    for (const size of o.sizes) results.push(await benchSize(rt, shm, size, o, ac.signal, started));

    console.log(`\nmedians of ${o.runs} runs\n${report(results)}`);
    const date = new Date().toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
    const out = path.join(RESULTS, `checkpoint-${date}.json`);
    await fs.mkdir(RESULTS, { recursive: true });
    const host = { kernel: os.release(), cpus: os.cpus().length, loadavg: os.loadavg().map(round1), memGiB: round1(os.totalmem() / 2 ** 30), criu: criu.versionText, node: process.version };
    await fs.writeFile(out, `${JSON.stringify({ date: new Date().toISOString(), goalFrozenRatio: GOAL, runs: o.runs, warmup: o.warmup, host, results }, null, 2)}\n`);
    console.log(`\nresults: ${path.relative(process.cwd(), out)}`);
    return results.every((r) => r.pass) ? 0 : 1;
  } finally {
    for (const n of started) await removeContainer(rt, n, true).catch((e: Error) => console.error(`cannot remove ${n}: ${e.message}`));
    // removeContainer leaves the per-root cgroup parent behind: remove it in every hierarchy (empty by now)
    for (const h of await fs.readdir('/sys/fs/cgroup').catch(() => [])) await fs.rmdir(path.join('/sys/fs/cgroup', h, rt.cgroupParent)).catch(() => undefined);
    await fs.rm(shm, { recursive: true, force: true });
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`bench failed: ${e.message}`);
    process.exit(/^interrupted/.test(e.message) ? 130 : 2);
  },
);
