/**
 * Store benchmark: checkpoints into a deduplicating checkpoint store and a
 * disaster-recovery restore from a remote one, for one heap-like container:
 *
 *   1. F  how long `checkpointToStore` keeps the container frozen (frozenMs), against
 *      B, a plain `criu dump --leave-running` of the same container to tmpfs
 *   2. the bytes each scheduled checkpoint adds to a local store: a full one first,
 *      then after 0%, 5% and 50% of the memory was rewritten (scattered 64 KiB chunks)
 *   3. D  `restoreFromStore` on this host from a store on a loopback sshd peer, against
 *      R, a plain `criu restore` from tmpfs of a plain dump of the same container
 *
 *   node dist/bench/store.js [--size 256] [--runs 2] [--warmup 1]
 *
 * Needs root. Results go to bench/results/store-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalAgent } from '../src/agent/server.js';
import { removeContainer } from '../src/container/remove.js';
import { locateCriu, type CriuBinary } from '../src/criu/binary.js';
import { importImage } from '../src/image/store.js';
import { restoreFromStore, type HostProbe } from '../src/restore/from-store.js';
import { createRuntime, type Runtime } from '../src/runtime/context.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { openStore } from '../src/store/open.js';
import { checkpointToStore, type StoreCheckpointResult } from '../src/store/put-checkpoint.js';
import { plainDump } from './lib/baseline.js';
import { awaitDumpedExit, plainKillDump, plainRestore, target } from './lib/move-plain.js';
import { cleanUpBench } from './lib/cleanup.js';
import { MoveRig } from './lib/move-rig.js';
import { interruptible, median, mib, ms, round1, sleep, summarize, table, type Summary } from './lib/timing.js';
import { mutate, residentMiB, startWorkload, type Workload } from './lib/workload.js';

const FRACTIONS = [0, 0.05, 0.5];
const RIG_HOST = 'storehost';
const RIG_ADDR = '127.0.0.8';
const SCHEDULE = 'bench-store';
const DEBIAN = '/var/cache/tsmigrate/images/debian/rootfs';
const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/results');

/** One checkpoint into the local store, with the plain dump (B) taken just before it. */
interface Step {
  label: string;
  /** null: the first, full checkpoint */
  fraction: number | null;
  /** 64 KiB chunks of the heap the workload rewrote before it, and their bytes */
  changedChunks: number;
  changedBytes: number;
  b: number;
  bImageBytes: number;
  frozenMs: number;
  dumpMs: number;
  snapshotMs: number;
  /** checkpointToStore's storeMs: chunking, hashing, compressing and writing, after the thaw, and the commit */
  storeMs: number;
  logical: number;
  chunks: number;
  newChunks: number;
  newBytes: number;
  addedBytes: number;
  /** addedBytes / the full checkpoint's addedBytes */
  ofFull: number;
  /** addedBytes / changedBytes (null for the full one and 0%) */
  ofChanged: number | null;
  load: number;
}

interface LocalRun {
  steps: Step[];
  /** the local store's size after the run (chunks only) */
  storeBytes: number;
}

interface RemoteRun {
  /** the checkpoint into the remote store that D restores */
  ckpt: { id: string; frozenMs: number; storeMs: number; logical: number; chunks: number; newChunks: number; addedBytes: number };
  killDump: number;
  killDumpBytes: number;
  r: number;
  d: number;
  /** D's parts, from timing the store's and the local agent's calls */
  parts: { choose: number; verify: number; transfer: number; restore: number; resume: number; other: number };
  bytes: number;
  /** the restored container's heartbeat advanced */
  alive: boolean;
  load: number;
}

function options(): { size: number; runs: number; warmup: number } {
  const { values } = parseArgs({ options: { size: { type: 'string', default: '256' }, runs: { type: 'string', default: '2' }, warmup: { type: 'string', default: '1' } } });
  const size = Number(values.size);
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  if (!(Number.isInteger(size) && size > 0) || !(Number.isInteger(runs) && runs > 0) || !(Number.isInteger(warmup) && warmup >= 0)) {
    throw new Error('usage: store.js [--size 256] [--runs 2] [--warmup 1]');
  }
  return { size, runs, warmup };
}

/** Let writeback of the previous step (store writes go to disk) finish before timing the next. */
async function settle(): Promise<void> {
  execFileSync('sync');
  await sleep(500);
}

const ratio = (a: number, b: number): number => Math.round((a / b) * 100) / 100;
const pct = (f: number): string => `${Math.round(f * 1000) / 10}%`;

/**
 * `obj` with the time spent in each of its async methods added to `acc[prefix + name]`
 * (to split restoreFromStore's time without changing it).
 */
function timed<T extends object>(obj: T, acc: Record<string, number>, prefix: string): T {
  return new Proxy(obj, {
    get(t, p) {
      const v: unknown = Reflect.get(t, p, t);
      if (typeof v !== 'function' || typeof p !== 'string') return v;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        const out: unknown = (v as (...a: unknown[]) => unknown).apply(t, args);
        if (out instanceof Promise) return out.finally(() => (acc[prefix + p] = (acc[prefix + p] ?? 0) + performance.now() - t0));
        return out;
      };
    },
  });
}

interface Ctx {
  rt: Runtime;
  criu: CriuBinary;
  w: Workload;
  base: string;
  shm: string;
  signal: AbortSignal;
}

const request = { stop: false, tcpEstablished: false, fileLocks: false, schedule: SCHEDULE };

/** Optionally rewrite `fraction` of the heap, then B (plain dump) and a checkpoint into `store`. */
async function step(c: Ctx, store: ChunkStore, fraction: number | null, full: StoreCheckpointResult | undefined): Promise<{ s: Step; r: StoreCheckpointResult }> {
  let changedChunks = 0;
  let changedBytes = 0;
  if (fraction !== null) {
    const m = await mutate(c.w, fraction, c.signal);
    changedChunks = m.chunks;
    changedBytes = m.bytes;
  }
  await settle();
  c.signal.throwIfAborted();
  const b = await plainDump(c.criu, c.w, c.shm);
  await settle();
  c.signal.throwIfAborted();
  const r = await checkpointToStore(c.rt, store, { name: c.w.name, ...request });
  const t = r.meta.checkpoint.timings;
  const s: Step = {
    label: fraction === null ? 'full' : `${pct(fraction)} changed`,
    fraction,
    changedChunks,
    changedBytes,
    b: round1(b.ms),
    bImageBytes: b.imageBytes,
    frozenMs: t.frozenMs,
    dumpMs: t.dumpMs,
    snapshotMs: t.snapshotMs,
    storeMs: round1(r.storeMs),
    ...r.counters,
    addedBytes: r.addedBytes,
    ofFull: full ? Math.round((r.addedBytes / full.addedBytes) * 1000) / 1000 : 1,
    ofChanged: changedBytes > 0 ? Math.round((r.addedBytes / changedBytes) * 100) / 100 : null,
    load: round1(os.loadavg()[0]!),
  };
  return { s, r };
}

/** Parts 1 and 2: a fresh local store per run; the full checkpoint, then one after each fraction. */
async function localRuns(c: Ctx, o: { runs: number; warmup: number }): Promise<LocalRun[]> {
  const open = (dir: string) => ChunkStore.open(new LocalBackend(dir), { create: true, key: null, seen: null });
  for (let i = 0; i < o.warmup; i++) {
    const dir = path.join(c.base, `local-store-warmup-${i}`);
    const { s } = await step(c, await open(dir), null, undefined);
    console.log(`  warmup: B ${ms(s.b)}, F ${ms(s.frozenMs)}, store ${ms(s.storeMs)}, added ${mib(s.addedBytes)}`);
    await fs.rm(dir, { recursive: true, force: true });
  }
  const runs: LocalRun[] = [];
  for (let i = 0; i < o.runs; i++) {
    const dir = path.join(c.base, `local-store-${i}`);
    const store = await open(dir);
    const first = await step(c, store, null, undefined);
    const steps = [first.s];
    for (const f of FRACTIONS) steps.push((await step(c, store, f, first.r)).s);
    const storeBytes = (await store.backend.stats()).bytes;
    await store.backend.close();
    await fs.rm(dir, { recursive: true, force: true });
    runs.push({ steps, storeBytes });
    console.log(`  run ${i + 1}/${o.runs} (local store):`);
    for (const s of steps) {
      console.log(
        `    ${s.label.padEnd(12)} B ${ms(s.b)}, F ${ms(s.frozenMs)}, store ${ms(s.storeMs)}; ` +
          `changed ${mib(s.changedBytes)}, added ${mib(s.addedBytes)} (${pct(s.ofFull)} of full, ${s.newChunks}/${s.chunks} chunks new); load ${s.load}`,
      );
    }
  }
  return runs;
}

/** The heartbeat of a restored container advances (it runs, and its /tmp is its own). */
async function heartbeatAdvances(rt: Runtime, name: string): Promise<boolean> {
  const hb = path.join((await rt.store.state(name)).rootfs.upper, 'tmp/heartbeat');
  const read = () => fs.readFile(hb, 'utf8').catch(() => '');
  const a = await read();
  for (let i = 0; i < 30; i++) {
    await sleep(100);
    const b = await read();
    if (b && b !== a) return true;
  }
  return false;
}

/** Part 3: checkpoint into the remote store, then R (plain dump + restore), then remove and D (restore from the store). */
async function remoteRuns(c: Ctx, o: { runs: number }, configFile: string, remoteDir: string): Promise<RemoteRun[]> {
  const { rt, criu, signal } = c;
  const name = c.w.name;
  const remote = await openStore(rt, { spec: `${RIG_HOST}:${remoteDir}`, configFile, create: true, signal });
  const runs: RemoteRun[] = [];
  try {
    for (let i = 0; i < o.runs; i++) {
      await settle();
      signal.throwIfAborted();
      const ck = await checkpointToStore(rt, remote, { name, ...request });
      // R: the container dumped (it dies) to tmpfs, then restored from there into its own cgroups and rootfs
      await settle();
      signal.throwIfAborted();
      const rDir = path.join(c.shm, `r-${i}`);
      const t = await target(rt, name);
      const dk = await plainKillDump(criu, t, rDir);
      await awaitDumpedExit(rt, name);
      await settle();
      const r = await plainRestore(rt, criu, t, rDir);
      await fs.rm(rDir, { recursive: true, force: true });
      // D: gone from this host, then restored here from the remote store
      await removeContainer(rt, name, true);
      await settle();
      signal.throwIfAborted();
      const acc: Record<string, number> = {};
      const here: HostProbe = {
        name: 'this host',
        connect: async () => {
          const agent = new LocalAgent(rt, 'bench');
          return { agent: timed(agent, acc, 'agent.'), close: () => agent.onDisconnect() };
        },
      };
      const d = await restoreFromStore(rt, { name, selector: { kind: 'latest' }, store: timed(remote, acc, 'store.'), target: here, hosts: [], force: true });
      if (d.id !== ck.meta.id) throw new Error(`restored ${d.id}, not the checkpoint just taken (${ck.meta.id})`);
      const a = (k: string) => acc[k] ?? 0;
      const choose = a('store.list') + a('store.load');
      const verify = a('store.check');
      const transfer = a('agent.putUpper') + a('agent.putImages');
      const restore = a('agent.prepare');
      const resume = a('agent.commit');
      const alive = await heartbeatAdvances(rt, name);
      if (!alive) throw new Error(`${name} does not run after the restore from the store (no heartbeat)`);
      const run: RemoteRun = {
        ckpt: {
          id: ck.meta.id, frozenMs: ck.meta.checkpoint.timings.frozenMs, storeMs: round1(ck.storeMs), logical: ck.counters.logical,
          chunks: ck.counters.chunks, newChunks: ck.counters.newChunks, addedBytes: ck.addedBytes,
        },
        killDump: round1(dk.ms),
        killDumpBytes: dk.bytes,
        r: round1(r.ms),
        d: round1(d.ms),
        parts: {
          choose: round1(choose), verify: round1(verify), transfer: round1(transfer), restore: round1(restore), resume: round1(resume),
          other: round1(d.ms - choose - verify - transfer - restore - resume),
        },
        bytes: d.bytes,
        alive,
        load: round1(os.loadavg()[0]!),
      };
      runs.push(run);
      console.log(
        `  run ${i + 1}/${o.runs} (remote store): checkpoint F ${ms(run.ckpt.frozenMs)}, store ${ms(run.ckpt.storeMs)}, added ${mib(run.ckpt.addedBytes)}; ` +
          `R ${ms(run.r)}; D ${ms(run.d)} (choose ${ms(choose)}, verify ${ms(verify)}, transfer ${ms(transfer)}, restore ${ms(restore)}, resume ${ms(resume)}); load ${run.load}`,
      );
    }
  } finally {
    await remote.backend.close().catch(() => undefined);
  }
  return runs;
}

interface Results {
  sizeMiB: number;
  residentMiB: number;
  freeze: { B: Summary; F: Summary; dump: Summary; snapshot: Summary; store: Summary; ratio: number; pairedRatio: number; bestRatio: number };
  /** ofFullPct: addedBytes as a percentage of the full checkpoint's; ofChanged: addedBytes / the bytes rewritten */
  bytes: Array<{ label: string; fraction: number | null; changedBytes: Summary; logical: Summary; chunks: Summary; newChunks: Summary; addedBytes: Summary; ofFullPct: Summary; ofChanged: Summary | null; storeMs: Summary }>;
  restore: { D: Summary; choose: Summary; verify: Summary; transfer: Summary; restore: Summary; resume: Summary; other: Summary; R: Summary; killDump: Summary; ratio: number; bytes: Summary };
  remoteCheckpoint: { frozenMs: Summary; storeMs: Summary; addedBytes: Summary };
  localRuns: LocalRun[];
  remoteRuns: RemoteRun[];
}

function summarise(sizeMiB: number, resident: number, local: LocalRun[], remote: RemoteRun[]): Results {
  const steps = local.flatMap((r) => r.steps);
  const col = <T>(xs: T[], f: (x: T) => number) => summarize(xs.map(f));
  const B = col(steps, (s) => s.b);
  const F = col(steps, (s) => s.frozenMs);
  const bytes = local[0]!.steps.map((s0, k) => {
    const at = local.map((r) => r.steps[k]!);
    return {
      label: s0.label,
      fraction: s0.fraction,
      changedBytes: col(at, (s) => s.changedBytes),
      logical: col(at, (s) => s.logical),
      chunks: col(at, (s) => s.chunks),
      newChunks: col(at, (s) => s.newChunks),
      addedBytes: col(at, (s) => s.addedBytes),
      ofFullPct: summarize(at.map((s) => s.ofFull * 100)),
      ofChanged: s0.fraction ? col(at, (s) => s.ofChanged ?? 0) : null,
      storeMs: col(at, (s) => s.storeMs),
    };
  });
  const D = col(remote, (r) => r.d);
  const R = col(remote, (r) => r.r);
  return {
    sizeMiB,
    residentMiB: resident,
    freeze: {
      B, F,
      dump: col(steps, (s) => s.dumpMs),
      snapshot: col(steps, (s) => s.snapshotMs),
      store: col(steps, (s) => s.storeMs),
      ratio: ratio(F.median, B.median),
      pairedRatio: ratio(median(steps.map((s) => s.frozenMs / s.b)), 1),
      bestRatio: ratio(F.min, B.min),
    },
    bytes,
    restore: {
      D,
      choose: col(remote, (r) => r.parts.choose),
      verify: col(remote, (r) => r.parts.verify),
      transfer: col(remote, (r) => r.parts.transfer),
      restore: col(remote, (r) => r.parts.restore),
      resume: col(remote, (r) => r.parts.resume),
      other: col(remote, (r) => r.parts.other),
      R,
      killDump: col(remote, (r) => r.killDump),
      ratio: ratio(D.median, R.median),
      bytes: col(remote, (r) => r.bytes),
    },
    remoteCheckpoint: { frozenMs: col(remote, (r) => r.ckpt.frozenMs), storeMs: col(remote, (r) => r.ckpt.storeMs), addedBytes: col(remote, (r) => r.ckpt.addedBytes) },
    localRuns: local,
    remoteRuns: remote,
  };
}

function report(x: Results, runs: number): string {
  const runsOf = (s: Summary, f: (v: number) => string = (v) => String(Math.round(v))) => s.runs.map(f).join(', ');
  const row = (label: string, s: Summary): string[] => [label, ms(s.median), `${Math.round(s.min)}-${Math.round(s.max)}`, runsOf(s)];
  const f = x.freeze;
  const pairs = f.B.runs.length;
  const freeze = [
    `1. freeze: checkpoint into a local store (F) against a plain dump to tmpfs (B); ${pairs} pairs (${runs} runs x ${pairs / runs} checkpoints)`,
    table(['quantity', 'median', 'min-max', 'runs'], [
      row('B  plain criu dump --leave-running (tmpfs)', f.B),
      row('F  checkpointToStore frozen', f.F),
      row('   criu dump (frozen)', f.dump),
      row('   copy of the upper layer (frozen)', f.snapshot),
      row('(after the thaw) into the store', f.store),
    ]),
    `F/B = ${f.ratio.toFixed(2)} (medians); median of paired F_i/B_i = ${f.pairedRatio.toFixed(2)}; best-of-runs F/B = ${f.bestRatio.toFixed(2)}`,
  ];
  const full = x.bytes[0]!;
  const bytes = [
    `2. bytes added per scheduled checkpoint, local store (medians of ${runs} runs; each run a fresh store)`,
    table(['checkpoint', 'heap rewritten', 'stream', 'chunks new/all', 'added', 'added/full', 'added/rewritten', 'store time'], x.bytes.map((s) => [
      s.fraction === null ? 'full (first)' : `after ${pct(s.fraction)}`,
      s.fraction === null ? '-' : mib(s.changedBytes.median),
      mib(s.logical.median),
      `${Math.round(s.newChunks.median)}/${Math.round(s.chunks.median)}`,
      mib(s.addedBytes.median),
      `${s.ofFullPct.median.toFixed(1)}%`,
      s.ofChanged ? `${s.ofChanged.median.toFixed(1)}x` : '-',
      ms(s.storeMs.median),
    ])),
    `added/full per run: ${x.bytes.slice(1).map((s) => `${s.label}: ${runsOf(s.ofFullPct, (v) => `${v.toFixed(1)}%`)}`).join('; ')}`,
    `(full = ${mib(full.addedBytes.median)} compressed in the store for ${mib(full.logical.median)} of tar streams. The heap is rewritten in`,
    ` 64 KiB pieces at random places; content-defined chunks average ~32 KiB, so each piece also changes the chunks`,
    ` it straddles, and a rewritten text piece stops compressing: added/rewritten > 1 is expected.)`,
  ];
  const r = x.restore;
  const restore = [
    `3. restore on this host from a remote store (${RIG_HOST} = sshd on ${RIG_ADDR}) (D) against a plain criu restore from tmpfs (R)`,
    table(['quantity', 'median', 'min-max', 'runs'], [
      row('D  restoreFromStore (remote store, this host)', r.D),
      row('   choose (list + load metadata)', r.choose),
      row('   verify (store host reads every chunk)', r.verify),
      row('   transfer (fetch, check, untar to tmpfs)', r.transfer),
      row('   restore (cgroups, rootfs, criu restore)', r.restore),
      row('   resume', r.resume),
      row('   other (connect, preflight, begin)', r.other),
      row('R  plain criu restore (tmpfs)', r.R),
      row('(ref) plain criu dump without --leave-running', r.killDump),
      row('(ref) checkpoint into the remote store: frozen', x.remoteCheckpoint.frozenMs),
      row('(ref) ... into the store after the thaw', x.remoteCheckpoint.storeMs),
    ]),
    `D/R = ${r.ratio.toFixed(2)}; D moved ${mib(r.bytes.median)} of tar streams (${Math.round(r.bytes.median / 2 ** 20 / (r.transfer.median / 1000))} MiB/s in transfer)`,
    `the checkpoints into the remote store added ${runsOf(x.remoteCheckpoint.addedBytes, (v) => mib(v))} (the first is a full one into the empty`,
    ` store; the heap is more random by then than at the local full checkpoint, after the rewrites, so it compresses less)`,
  ];
  return [...freeze, '', ...bytes, '', ...restore].join('\n');
}

async function main(): Promise<number> {
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('the store benchmark needs root');
  // CRIU, the containers and the rig's sshd (so the store host's agent) inherit this, for the measurements and the baselines alike
  os.setPriority(-10);
  const ac = interruptible();

  // on disk: the state root, the local stores and the remote store (the rig's state root is inside too)
  const base = mkdtempSync('/var/tmp/tsm-store-bench-');
  const shm = mkdtempSync('/dev/shm/tsm-store-bench-');
  // tsmigrate's staging (CRIU's images while frozen, and the restore's incoming images) on the baselines' tmpfs
  process.env['TSMIGRATE_STAGING'] = path.join(shm, 'staging');
  const configFile = path.join(base, 'config.yaml');
  const rig = new MoveRig(path.join(base, 'rig'));
  const rt = createRuntime({ root: path.join(base, 'root') });
  try {
    const criu = await locateCriu(process.env);
    console.log(`CRIU ${criu.versionText}, kernel ${os.release()}, ${os.cpus().length} CPUs; ${o.size} MiB, ${o.runs} runs (+${o.warmup} warmup)`);
    const peer = await rig.start(RIG_HOST, RIG_ADDR, configFile);
    console.log(`store host: sshd on ${peer.addr}:${peer.port}`);
    await importImage(rt.paths, 'debian', DEBIAN);

    const name = `store-${o.size}`;
    process.stdout.write(`${o.size} MiB: starting the workload ... `);
    const w = await startWorkload(rt, name, o.size, ac.signal);
    const resident = await residentMiB(rt, name);
    console.log(`ready (resident ${resident} MiB)`);
    const c: Ctx = { rt, criu, w, base, shm, signal: ac.signal };
    const local = await localRuns(c, o);
    const remote = await remoteRuns(c, o, configFile, path.join(base, 'remote-store'));
    await removeContainer(rt, name, true);

    const x = summarise(o.size, resident, local, remote);
    console.log(`\n${o.size} MiB (resident ${resident} MiB), medians of ${o.runs} runs\n\n${report(x, o.runs)}`);
    const date = new Date().toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
    const out = path.join(RESULTS, `store-${date}.json`);
    await fs.mkdir(RESULTS, { recursive: true });
    const host = { kernel: os.release(), cpus: os.cpus().length, loadavg: os.loadavg().map(round1), memGiB: round1(os.totalmem() / 2 ** 30), criu: criu.versionText, node: process.version };
    await fs.writeFile(out, `${JSON.stringify({ date: new Date().toISOString(), runs: o.runs, warmup: o.warmup, fractions: FRACTIONS, host, results: x }, null, 2)}\n`);
    console.log(`\nresults: ${path.relative(process.cwd(), out)}`);
    return 0;
  } finally {
    await cleanUpBench([rt], { shm, base, between: async () => {
      for (const p of await rig.stopAll()) console.error(`cannot stop the rig host ${p}`);
    } });
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`bench failed: ${e.message}`);
    process.exit(/^interrupted/.test(e.message) ? 130 : 2);
  },
);
