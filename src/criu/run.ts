/**
 * Running CRIU: one argument array (from argv.ts), no shell, stdin closed,
 * stdout/stderr captured, in its own process group so that a CRIU that is
 * stopped (its watchdog fired, a timeout, a cancel) goes with everything it
 * forked. A non-zero exit becomes a CriuError explaining the failure from
 * CRIU's log (see errors.ts), with the log's path kept.
 */
import { rm, readFile } from 'node:fs/promises';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { CRIU_FIX, type CriuBinary } from './binary.js';
import type { CriuDeadline } from './deadline.js';
import { CriuError, explainCriuFailure, stoppedCriuFailure, type CriuOp } from './errors.js';
import { keepCriuLog } from './kept-logs.js';
import { spawnCriu } from './spawn.js';
import { unlockCriuNetwork, unmountCriuYard } from './leftovers.js';
import { killGroup, watchCriu, type CriuWatch, type ProgressSources } from './watchdog.js';

export interface RunCriuOptions {
  /**
   * The --images-dir, --log-file and --work-dir of the run: where to find the
   * log. Each defaults to what argv says; given, it must agree with argv (a
   * mismatch would read another run's log). Without a log file CRIU logs to
   * stderr, which is then what gets explained.
   */
  imagesDir?: string;
  logFile?: string;
  workDir?: string;
  /** Aborting it stops CRIU (SIGTERM, then SIGKILL after 5 s). */
  signal?: AbortSignal;
  /** Stop CRIU after this long (same way). Default: no limit. */
  timeoutMs?: number;
  /**
   * The watchdog (deadline.ts, watchdog.ts): CRIU is killed past the hard
   * deadline or once it stops making progress, and the error (reason
   * 'stalled') says so and quotes its last log lines.
   */
  deadline?: CriuDeadline;
  /** More signs of progress for the watchdog (the container's cgroup CPU time). */
  progress?: Pick<ProgressSources, 'cgroupCpuNs'>;
  /** The fix of a 'stalled' error (default: a generic one). */
  stalledFix?: string;
  /**
   * On failure, keep the log under <root>/logs/criu (kept-logs.ts) and name
   * that copy in the error: callers remove the images directory.
   */
  keepLog?: { root: string; container?: string };
  /** Added to (and overriding) this process's environment, e.g. PATH. */
  env?: NodeJS.ProcessEnv;
}

export interface RunCriuResult {
  durationMs: number;
  /** Where the log is, when logFile was given. */
  logPath: string | undefined;
  stdout: string;
  stderr: string;
}

const KNOWN_OPS: readonly CriuOp[] = ['dump', 'pre-dump', 'restore', 'check', 'cpuinfo', 'page-server', 'lazy-pages'];

/** The operation an argument array asks for (its first element). */
export function criuOpOf(argv: readonly string[]): CriuOp {
  const first = argv[0];
  if (first === undefined || !KNOWN_OPS.includes(first as CriuOp)) {
    throw new TsmError('EINVAL_ARG', `not a CRIU command line: ${JSON.stringify(argv.slice(0, 2))}`, { fix: 'build it with dumpArgv / restoreArgv / checkArgv / cpuinfo*Argv' });
  }
  return first as CriuOp;
}

/** The value of an option in an argument array ('--long V', '--long=V' or '-s V'), if present. */
export function argvOption(argv: readonly string[], long: string, short?: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === `--${long}` || (short !== undefined && a === `-${short}`)) found = argv[++i];
    else if (a.startsWith(`--${long}=`)) found = a.slice(long.length + 3);
  }
  return found;
}

function agree(what: string, given: string | undefined, inArgv: string | undefined, isDir = true): string | undefined {
  const same = (a: string, b: string) => (isDir ? path.resolve(a) === path.resolve(b) : a === b);
  if (given !== undefined && inArgv !== undefined && !same(given, inArgv)) {
    throw new TsmError('EINVAL_ARG', `runCriu: ${what} ${JSON.stringify(given)} differs from the command line's ${JSON.stringify(inArgv)}`, {
      fix: `pass the same ${what} to the argv builder and runCriu (or leave it out of runCriu's options)`,
    });
  }
  return given ?? inArgv;
}

/** Where CRIU writes `--log-file logFile`. */
export function criuLogPath(opts: { imagesDir: string; workDir?: string; logFile: string }): string {
  return path.isAbsolute(opts.logFile) ? opts.logFile : path.join(opts.workDir ?? opts.imagesDir, opts.logFile);
}

const STALLED_FIX = 'if CRIU is only slow here, allow it more with --criu-deadline (see README)';

/**
 * Run `bin argv...`. Resolves when CRIU exits 0. Otherwise throws:
 * - CriuError (code ECRIU, with reason/excerpt/logPath) when CRIU ran and failed,
 *   was killed, stopped by its watchdog (reason 'stalled'), timed out or was
 *   cancelled (reason 'interrupted');
 * - TsmError ECRIU_MISSING when the binary cannot be started.
 * A run stopped before its end has what it left taken away (leftovers.ts).
 */
export async function runCriu(bin: CriuBinary | string, argv: readonly string[], opts: RunCriuOptions): Promise<RunCriuResult> {
  const op = criuOpOf(argv);
  const file = typeof bin === 'string' ? bin : bin.path;
  const imagesDir = agree('imagesDir', opts.imagesDir, argvOption(argv, 'images-dir', 'D'));
  const logFile = agree('logFile', opts.logFile, argvOption(argv, 'log-file', 'o'), false);
  const workDir = agree('workDir', opts.workDir, argvOption(argv, 'work-dir', 'W'));
  let logPath: string | undefined;
  if (logFile !== undefined) {
    const base = workDir ?? imagesDir;
    if (base === undefined && !path.isAbsolute(logFile)) {
      throw new TsmError('EINVAL_ARG', `runCriu: cannot tell where CRIU writes ${logFile} (no images or work directory)`, { fix: 'pass --images-dir in argv' });
    }
    logPath = criuLogPath({ imagesDir: base ?? '/', logFile });
  }
  // a stale log from an earlier run would be read as this run's if CRIU fails before opening it
  if (logPath !== undefined) await rm(logPath, { force: true });

  const t0 = performance.now();
  const child = spawnCriu(file, argv, {
    ...(opts.env !== undefined ? { env: opts.env } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
  });
  const pid = child.pid;
  let watch: CriuWatch | undefined;
  if (opts.deadline && pid !== undefined) {
    watch = watchCriu({ deadline: opts.deadline, sources: { logPath, imagesDir, pid, ...opts.progress }, kill: () => killGroup(pid) });
  }
  const r = await child.result;
  watch?.stop();
  const how = child.stopped();
  const durationMs = performance.now() - t0;
  const stdout = String(r.stdout ?? '');
  const stderr = String(r.stderr ?? '');
  const expiry = watch?.fired();
  if (r.exitCode === 0 && !r.failed && !how && !expiry) return { durationMs, logPath, stdout, stderr };

  // could not start at all
  if (r.exitCode === undefined && r.signal === undefined && !how && !expiry) {
    const why = (r.cause as NodeJS.ErrnoException | undefined)?.code ?? r.shortMessage ?? 'unknown error';
    throw new TsmError('ECRIU_MISSING', `cannot run CRIU at ${file}: ${why}`, { fix: CRIU_FIX, cause: r.cause });
  }
  if (expiry && pid !== undefined) killGroup(pid);
  const dumpPid = Number(argvOption(argv, 'tree', 't'));
  if ((how || expiry) && (op === 'dump' || op === 'pre-dump') && dumpPid > 0) await unlockCriuNetwork(dumpPid).catch(() => false);
  const workBase = workDir ?? imagesDir;
  if ((how || expiry) && workBase !== undefined) unmountCriuYard(workBase);

  const log = logPath !== undefined ? await readFile(logPath, 'utf8').catch(() => undefined) : undefined;
  const text = [log ?? '', stderr].filter((t) => t.trim() !== '').join('\n');
  let shownLog = log !== undefined ? logPath : undefined;
  if (opts.keepLog !== undefined && text.trim() !== '') {
    shownLog = (await keepCriuLog({ ...opts.keepLog, op, text })) ?? shownLog;
  }
  const keep = shownLog !== undefined ? { logPath: shownLog } : {};
  const status = { ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}), ...(r.signal !== undefined ? { signal: r.signal } : {}) };

  if (expiry) {
    throw new CriuError(op, stoppedCriuFailure(expiry, text, opts.stalledFix ?? STALLED_FIX), { ...keep, ...status });
  }
  if (how) {
    const x = explainCriuFailure(op, text);
    const limit = opts.timeoutMs ?? 0;
    const what = how === 'timedOut' ? `did not finish within ${limit < 1000 ? `${limit} ms` : `${Math.round(limit / 1000)} s`} and was stopped` : 'was cancelled and stopped';
    const hint = op === 'dump' || op === 'pre-dump' ? 'the dumped tasks may be left frozen or stopped: check them (tsmigrate ps) and thaw or restart them' : 'check what it left behind (tsmigrate ps) and try again';
    throw new CriuError(op, { reason: 'interrupted', message: what, fix: hint, excerpt: x.excerpt, keyLines: x.keyLines ?? [] }, { ...keep, ...status, cause: r.cause });
  }

  const x = explainCriuFailure(op, text);
  if (x.reason === 'unknown' && r.signal !== undefined) {
    x.message = `CRIU was killed by ${r.signal}; ${x.message}`;
  }
  throw new CriuError(op, x, { ...keep, ...status });
}
