/**
 * A test-only peer agent: the runtime `tsmigrate agent --stdio` builds, served
 * the same way (src/cli/agent-stdio.ts), with faults set on LocalAgent's hooks
 * from its own argv. A rig host runs it as its command:
 *
 *   node dist/test/helpers/fault-agent.js --root ROOT --fault NAME [--fault NAME...] [--OPTION VALUE...] agent --stdio
 *
 * (faultAgentCommand() builds that line). To add a fault: add a hook to
 * LocalAgent (an optional function property, called where the fault belongs)
 * and an entry to `faults` below that sets it. Nothing in src/ reads the
 * environment for faults.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, statfsSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnHoldGuard } from '../../src/agent/hold.js';
import { MigrationRecords } from '../../src/agent/migrations.js';
import { LocalAgent } from '../../src/agent/server.js';
import { serveAgentOnStdio } from '../../src/cli/agent-stdio.js';
import { criuDeadlineSetting } from '../../src/criu/deadline.js';
import { TsmError } from '../../src/errors/errors.js';
import { tuneMallocForStreaming } from '../../src/native/native.js';
import { createRuntime, type Runtime } from '../../src/runtime/context.js';
import { guardLogFile } from '../../src/state/guard-logs.js';
import { resolveRoot } from '../../src/state/paths.js';
import { stderrLogger } from '../../src/util/logger.js';
import { CLI } from './cli.js';

/** A fault sets hooks on the agent (or wraps its methods); `opt` reads a value option of the entry (--fill FILE). */
type Fault = (agent: LocalAgent, rt: Runtime, opt: (name: string) => string) => void;

/** Every fault this entry can inject, by the name given to --fault. The one place to add one. */
export const faults: Record<string, Fault> = {
  /** the peer's restore fails as it begins (during the transfer, or in prepare) */
  'fail-restore': (agent, rt) => {
    agent.faultBeforeRestore = () => {
      noteFault(rt, 'failed a restore');
      throw new TsmError('ECRIU', 'restore failed on the peer (injected)', { fix: 'none: test fault' });
    };
  },
  /** the agent SIGKILLed once `criu restore` of this root's container runs */
  'kill-in-criu-restore': (agent, rt) => {
    agent.faultBeforeRestore = () => void killSelfWhen(rt, 'during criu restore', () => criuRestoreRunning(rt.paths.containers));
  },
  /** one byte of the largest pages image flipped on disk once images arrived, before CRIU reads them */
  'corrupt-at-rest': (agent) => {
    agent.faultAtRest = flipPagesByte;
  },
  /**
   * the disk fills right after `begin` (another writer): --fill FILE is created
   * with all but --leave BYTES of its filesystem's free space (fallocate)
   */
  'fill-after-begin': (agent, _rt, opt) => {
    const [file, leave] = [opt('--fill'), Number(opt('--leave'))];
    const begin = agent.begin.bind(agent);
    agent.begin = async (p) => {
      const r = await begin(p);
      const st = statfsSync(path.dirname(file));
      const free = Number(st.bavail) * Number(st.bsize);
      if (free > leave) execFileSync('fallocate', ['-l', String(free - leave), file]);
      return r;
    };
  },
  /** the agent dies once prepare succeeded, before its reply */
  'prepare-reply-lost': (agent) => {
    agent.afterPrepare = die;
  },
  /** while --block FILE exists, an abort kills the agent (the abort undeliverable) */
  'block-abort': (agent, _rt, opt) => {
    const [block, abort] = [opt('--block'), agent.abort.bind(agent)];
    agent.abort = async (p) => {
      if (existsSync(block)) die();
      return abort(p);
    };
  },
  /**
   * while --block FILE exists, a commit of a held copy kills the agent (the
   * commit undeliverable until the hold expired; a commit after that gets the agent's real answer)
   */
  'block-commit': (agent, rt, opt) => {
    const [block, commit, records] = [opt('--block'), agent.commit.bind(agent), new MigrationRecords(rt.paths)];
    agent.commit = async (p) => {
      if (existsSync(block) && (await records.get(p.migrationId))?.phase === 'prepared') die();
      return commit(p);
    };
  },
};

const die = (): void => void process.kill(process.pid, 'SIGKILL');

/**
 * Poll every 5 ms (up to 60 s) and SIGKILL this process once `cond` holds,
 * noting in the root's faults.log whether it did (tests check the fault really happened).
 */
function killSelfWhen(rt: Runtime, what: string, cond: () => boolean): void {
  const t0 = Date.now();
  const tick = setInterval(() => {
    if (cond()) {
      clearInterval(tick);
      noteFault(rt, `killed ${what}`);
      process.kill(process.pid, 'SIGKILL');
    } else if (Date.now() - t0 > 60000) {
      clearInterval(tick);
      noteFault(rt, `never saw ${what}`);
    }
  }, 5);
}

/** The faults.log of a peer root: one line per fault this entry injected. */
export function faultLog(root: string): string[] {
  const f = path.join(root, 'faults.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

function noteFault(rt: Runtime, line: string): void {
  appendFileSync(path.join(rt.paths.root, 'faults.log'), `${line}\n`);
}

/** One byte of the largest pages image flipped on disk, among the bytes that have arrived. */
async function flipPagesByte(dir: string): Promise<void> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const pages = await Promise.all((await fs.readdir(dir)).filter((n) => /^pages-\d+\.img$/.test(n)).map(async (n) => ({ n, size: (await fs.stat(path.join(dir, n))).size })));
    const big = pages.sort((a, b) => b.size - a.size)[0];
    if (big && big.size >= 8192) {
      const fh = await fs.open(path.join(dir, big.n), 'r+');
      try {
        const at = Math.floor(big.size / 2);
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, at);
        b[0] = b[0]! ^ 0x55;
        await fh.write(b, 0, 1, at);
      } finally {
        await fh.close();
      }
      return;
    }
    if (Date.now() > deadline) throw new Error('test fault: no pages image arrived to corrupt');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A `criu restore` with --root under `containers` (this peer's containers) is running. */
export function criuRestoreRunning(containers: string): boolean {
  return findProcesses((argv) => argv.includes('restore') && argv.some((a, i) => argv[i - 1] === '--root' && a.startsWith(containers + path.sep))).length > 0;
}

/** Pids whose argv satisfies `match` (processes that vanish while read are skipped). */
export function findProcesses(match: (argv: string[]) => boolean): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (match(argv)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

const ENTRY = fileURLToPath(import.meta.url);

/**
 * The host command (for `tsmigrate host add --command`) running this entry on a peer root with faults;
 * `opts` are the faults' value options ({ '--block': FILE }).
 */
export function faultAgentCommand(root: string, names: string[], opts: Record<string, string> = {}): string {
  for (const n of names) if (!faults[n]) throw new Error(`unknown fault ${n}: one of ${Object.keys(faults).join(', ')}`);
  return [process.execPath, '--initial-old-space-size=256', ENTRY, '--root', root, ...names.flatMap((n) => ['--fault', n]), ...Object.entries(opts).flat()].join(' ');
}

function parseArgs(argv: string[]): { root?: string; faults: string[]; verbose: boolean; opts: Map<string, string> } {
  const r: { root?: string; faults: string[]; verbose: boolean; opts: Map<string, string> } = { faults: [], verbose: false, opts: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root') r.root = argv[++i];
    else if (a === '--fault') r.faults.push(argv[++i] ?? '');
    else if (a === '-v' || a === '--verbose') r.verbose = true;
    else if (a.startsWith('--') && a !== '--stdio') r.opts.set(a, argv[++i] ?? '');
  }
  return r;
}

async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  for (const n of args.faults) if (!faults[n]) throw new Error(`fault-agent: unknown fault "${n}": use one of ${Object.keys(faults).join(', ')}`);
  tuneMallocForStreaming();
  const logger = stderrLogger(args.verbose);
  const rt = createRuntime({ root: resolveRoot(args.root), logger, criuDeadline: criuDeadlineSetting(undefined, process.env) });
  const pkg = JSON.parse(readFileSync(path.join(path.dirname(ENTRY), '../../../package.json'), 'utf8')) as { version: string };
  // held copies expire as on a real peer: the hold guard is the real CLI's `guard-hold`
  const agent = new LocalAgent(rt, pkg.version, {
    holdGuard: (id) => spawnHoldGuard([process.execPath, CLI, '--root', rt.paths.root, '--verbose', 'guard-hold', id], guardLogFile(rt.paths, id, 'hold')),
  });
  const opt = (name: string) => {
    const v = args.opts.get(name);
    if (!v) throw new Error(`fault-agent: ${name} is required by ${args.faults.join(', ')}`);
    return v;
  };
  for (const n of args.faults) faults[n]!(agent, rt, opt);
  await serveAgentOnStdio(agent, logger);
}

// run as a program with `agent --stdio` only: imported (or run bare by `node --test dist/test/`), it does nothing
if (process.argv[1] === ENTRY && process.argv.includes('--stdio')) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`tsmigrate: error: ${e instanceof TsmError ? e.oneLine() : e.message}\n`);
    process.exitCode = 1;
  });
}
