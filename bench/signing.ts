/**
 * Signing benchmark: what signing and checking add to a move's downtime and to
 * a DR restore from a store, against the same build with the checks off (the
 * Runtime's Signing swapped for bench/lib/signing-off.ts), in the same run,
 * modes alternating run by run:
 *
 *   M  an in-process move (two state roots on this host, the peer's agent
 *      called in-process) of a heap-like container of --move-size MiB, there
 *      and back: report.downtime.totalMs, checks on (Mon) and off (Moff)
 *   D  restoreFromStore of a --restore-size MiB container from a local store
 *      onto this host: the whole restore, checks on (Don) and off (Doff)
 *   S  the signature work itself inside each (every sign and verify, timed
 *      around the calls, key and config reads included): in a move the source
 *      signs the arrived sums and the peer checks them inside the downtime (the
 *      begin is signed and checked before the freeze); a DR restore checks the
 *      snapshot and signs and checks begin and sums
 *
 *   node dist/bench/signing.js [--move-size 1024] [--restore-size 256] [--runs 4] [--no-move]
 *
 * Runs come in pairs (there and back for a move); with an even --runs each mode
 * takes each direction and each place in a pair equally often.
 *
 * Goal: signing and checking add under 2% (S/Moff and S/Doff; the A/B
 * difference Mon-Moff is printed beside it with the spread of the runs, which
 * on a loaded 2-core machine is much wider than 2%). Needs root. Results go to
 * bench/results/signing-<date>.json.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalAgent } from '../src/agent/server.js';
import { removeContainer } from '../src/container/remove.js';
import { locateCriu } from '../src/criu/binary.js';
import { importImage } from '../src/image/store.js';
import { tuneMallocForStreaming } from '../src/native/native.js';
import { moveContainer, type PeerConnection } from '../src/move/move.js';
import { restoreFromStore, type HostProbe } from '../src/restore/from-store.js';
import { createRuntime, type Runtime } from '../src/runtime/context.js';
import { hostSigning } from '../src/sign/signing.js';
import { ChunkStore } from '../src/store/chunk-store.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { checkpointToStore } from '../src/store/put-checkpoint.js';
import { silentLogger } from '../src/util/logger.js';
import { cleanUpBench } from './lib/cleanup.js';
import { rerunWithNodeFlags } from './lib/node-flags.js';
import { checksOff, timedSigning, type SigningOp } from './lib/signing-off.js';
import { interruptible, ms, round1, sleep, summarize, table, type Summary } from './lib/timing.js';
import { trustEachOther } from './lib/trust.js';
import { startWorkload } from './lib/workload.js';

const DEBIAN = '/var/cache/tsmigrate/images/debian/rootfs';
const RESULTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/results');
type Mode = 'on' | 'off';

interface Host {
  root: string;
  configFile: string;
  /** the runtime with the checks on (its Signing timed into `ops`) and with them off */
  on: Runtime;
  off: Runtime;
}

interface Sample {
  mode: Mode;
  ms: number;
  /** ms of signing work inside it (mode on), by where it falls */
  signingMs: number;
  ops: SigningOp[];
  load: number;
}

function options(): { moveSize: number; restoreSize: number; runs: number; move: boolean } {
  const { values } = parseArgs({
    options: { 'move-size': { type: 'string', default: '1024' }, 'restore-size': { type: 'string', default: '256' }, runs: { type: 'string', default: '4' }, 'no-move': { type: 'boolean', default: false } },
  });
  const o = { moveSize: Number(values['move-size']), restoreSize: Number(values['restore-size']), runs: Number(values.runs), move: !values['no-move'] };
  if (![o.moveSize, o.restoreSize, o.runs].every((n) => Number.isInteger(n) && n > 0)) throw new Error('usage: signing.js [--move-size 1024] [--restore-size 256] [--runs 4] [--no-move]');
  return o;
}

async function settle(): Promise<void> {
  execFileSync('sync');
  await sleep(500);
}

function host(root: string, ops: SigningOp[]): Host {
  const configFile = path.join(root, 'config.yaml');
  const signing = timedSigning(hostSigning({ root, configFile, override: null, logger: silentLogger }), ops);
  return { root, configFile, on: createRuntime({ root, configFile, signing }), off: createRuntime({ root, configFile, signing: checksOff }) };
}

/** on, off, off, on, on, off, ...: each mode first in half the pairs */
const modeOf = (i: number, second: boolean): Mode => ((i % 2 === 0) !== second ? 'on' : 'off');

async function moves(src: Host, dst: Host, ops: SigningOp[], sizeMiB: number, runs: number, signal: AbortSignal): Promise<Sample[]> {
  const name = `sig-mv-${sizeMiB}`;
  process.stdout.write(`move ${sizeMiB} MiB: starting the workload ... `);
  await startWorkload(src.on, name, sizeMiB, signal);
  console.log('ready');
  const samples: Sample[] = [];
  let here = src;
  let there = dst;
  // one untimed move there and back first (caches, the learned rates)
  for (let i = -1; i < runs; i++) {
    for (const second of [false, true]) {
      await settle();
      signal.throwIfAborted();
      const mode = modeOf(i, second);
      const peer = new LocalAgent(there[mode], 'bench');
      const connect = async (): Promise<PeerConnection> => ({ agent: peer, close: async () => undefined });
      ops.length = 0;
      const r = await moveContainer(here[mode], { name, host: 'peer', compress: 'off', signal }, connect);
      const frozen = ops.filter((o) => o.purpose === 'move-sums');
      const s: Sample = { mode, ms: r.downtime.totalMs, signingMs: frozen.reduce((a, o) => a + o.ms, 0), ops: ops.map((o) => ({ ...o, ms: round1(o.ms) })), load: round1(os.loadavg()[0]!) };
      if (i >= 0) samples.push(s);
      console.log(`  ${i < 0 ? 'warmup' : `run ${i + 1}/${runs}`} ${mode === 'on' ? 'checks on ' : 'checks off'}: downtime ${ms(s.ms)}${mode === 'on' ? `, signing inside it ${s.signingMs.toFixed(2)} ms (all ops ${ops.map((o) => `${o.op} ${o.purpose} ${o.ms.toFixed(2)}`).join(', ')})` : ''}; load ${s.load}`);
      [here, there] = [there, here];
    }
  }
  await removeContainer(here.on, name, true);
  return samples;
}

async function restores(h: Host, ops: SigningOp[], sizeMiB: number, runs: number, base: string, signal: AbortSignal): Promise<Sample[]> {
  const name = `sig-dr-${sizeMiB}`;
  process.stdout.write(`restore ${sizeMiB} MiB: starting the workload ... `);
  await startWorkload(h.on, name, sizeMiB, signal);
  console.log('ready');
  const store = await ChunkStore.open(new LocalBackend(path.join(base, 'store')), { create: true, key: null, seen: null });
  await checkpointToStore(h.on, store, { name, stop: false, tcpEstablished: false, fileLocks: true });
  const samples: Sample[] = [];
  for (let i = -1; i < runs; i++) {
    for (const second of [false, true]) {
      await removeContainer(h.on, name, true);
      await settle();
      signal.throwIfAborted();
      const mode = modeOf(i, second);
      const here: HostProbe = {
        name: 'this host',
        connect: async () => {
          const agent = new LocalAgent(h[mode], 'bench');
          return { agent, close: () => agent.onDisconnect() };
        },
      };
      ops.length = 0;
      const d = await restoreFromStore(h[mode], { name, selector: { kind: 'latest' }, store, target: here, hosts: [], force: true });
      const s: Sample = { mode, ms: d.ms, signingMs: ops.reduce((a, o) => a + o.ms, 0), ops: ops.map((o) => ({ ...o, ms: round1(o.ms) })), load: round1(os.loadavg()[0]!) };
      if (i >= 0) samples.push(s);
      console.log(`  ${i < 0 ? 'warmup' : `run ${i + 1}/${runs}`} ${mode === 'on' ? 'checks on ' : 'checks off'}: restore ${ms(s.ms)}${mode === 'on' ? `, signing inside it ${s.signingMs.toFixed(2)} ms (${ops.map((o) => `${o.op} ${o.purpose} ${o.ms.toFixed(2)}`).join(', ')})` : ''}; load ${s.load}`);
    }
  }
  await removeContainer(h.on, name, true);
  return samples;
}

interface Verdict {
  on: Summary;
  off: Summary;
  /** the signing work inside, checks on */
  signingMs: Summary;
  /** median signing work / median with checks off, % */
  signingPct: number;
  /** (median on - median off) / median off, %: the A/B difference, noise included */
  abPct: number;
  /** (max - min) / median of the checks-off runs, %: the noise the A/B difference sits in */
  noisePct: number;
  pass: boolean;
}

function verdict(samples: Sample[]): Verdict {
  const on = samples.filter((s) => s.mode === 'on');
  const off = samples.filter((s) => s.mode === 'off');
  const v = { on: summarize(on.map((s) => s.ms)), off: summarize(off.map((s) => s.ms)), signingMs: summarize(on.map((s) => s.signingMs)) };
  const signingPct = (v.signingMs.median / v.off.median) * 100;
  return {
    ...v,
    signingMs: { ...v.signingMs, median: Math.round(v.signingMs.median * 1000) / 1000 },
    signingPct: Math.round(signingPct * 1000) / 1000,
    abPct: round1(((v.on.median - v.off.median) / v.off.median) * 100),
    noisePct: round1(((v.off.max - v.off.min) / v.off.median) * 100),
    pass: signingPct < 2,
  };
}

function report(what: string, v: Verdict): string[] {
  return [
    `${what}, checks on ${ms(v.on.median)} (${ms(v.on.min)}-${ms(v.on.max)}), off ${ms(v.off.median)} (${ms(v.off.min)}-${ms(v.off.max)})`,
    `  signing and checking inside it: ${v.signingMs.median} ms = ${v.signingPct}% of the downtime with checks off: ${v.pass ? 'PASS' : 'FAIL'} (goal < 2%)`,
    `  A/B: on - off = ${v.abPct}% of off; the spread of the off runs alone is ${v.noisePct}%`,
  ];
}

async function main(): Promise<number> {
  const rerun = rerunWithNodeFlags();
  if (rerun) return rerun;
  const o = options();
  if (process.getuid?.() !== 0) throw new Error('the signing benchmark needs root');
  os.setPriority(-10);
  tuneMallocForStreaming();
  const ac = interruptible();
  const base = mkdtempSync('/var/tmp/tsm-signing-bench-');
  const shm = mkdtempSync('/dev/shm/tsm-signing-bench-');
  process.env['TSMIGRATE_STAGING'] = path.join(shm, 'staging');
  const ops: SigningOp[] = [];
  const a = host(path.join(base, 'a'), ops);
  const b = host(path.join(base, 'b'), ops);
  try {
    const criu = await locateCriu(process.env);
    console.log(`CRIU ${criu.versionText}, kernel ${os.release()}, ${os.cpus().length} CPUs, load ${os.loadavg().map(round1).join(' ')}; ${o.runs} runs per mode`);
    await trustEachOther(a, b);
    for (const h of [a, b]) await importImage(h.on.paths, 'debian', DEBIAN);
    const dr = await restores(a, ops, o.restoreSize, o.runs, base, ac.signal);
    const mv = o.move ? await moves(a, b, ops, o.moveSize, o.runs, ac.signal) : [];
    const results = { restore: { sizeMiB: o.restoreSize, verdict: verdict(dr), samples: dr }, ...(mv.length ? { move: { sizeMiB: o.moveSize, verdict: verdict(mv), samples: mv } } : {}) };
    console.log(['', ...report(`DR restore of ${o.restoreSize} MiB`, results.restore.verdict), ...(results.move ? report(`move downtime at ${o.moveSize} MiB`, results.move.verdict) : [])].join('\n'));
    console.log(table(['', 'median', 'runs'], [['restore on', ms(results.restore.verdict.on.median), results.restore.verdict.on.runs.join(', ')], ['restore off', ms(results.restore.verdict.off.median), results.restore.verdict.off.runs.join(', ')]]));
    const date = new Date().toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
    const out = path.join(RESULTS, `signing-${date}.json`);
    await fs.mkdir(RESULTS, { recursive: true });
    const hostInfo = { kernel: os.release(), cpus: os.cpus().length, loadavg: os.loadavg().map(round1), criu: criu.versionText, node: process.version };
    await fs.writeFile(out, `${JSON.stringify({ date: new Date().toISOString(), runs: o.runs, host: hostInfo, results }, null, 2)}\n`);
    console.log(`\nresults: ${path.relative(process.cwd(), out)}`);
    return 0;
  } finally {
    await cleanUpBench([a.on, b.on], { shm, base });
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`bench failed: ${e.stack ?? e.message}`);
    process.exit(/^interrupted/.test(e.message) ? 130 : 2);
  },
);
