/**
 * Reading CRIU logs: pick out the error lines, and turn the failures people
 * actually hit into one plain sentence plus what to do about it.
 *
 * CRIU log lines look like
 *   (00.084218) Error (criu/file.c:123): message
 *   (00.067199)  31366: Error (criu/files-reg.c:2175): message   (restore, per task)
 *   Error (criu/util.c:642): execvp(...) failed: ...              (from a forked helper)
 *   pie: 24290: ...                                               (parasite, no timestamp)
 * Everything here is pure: callers read the log file (see run.ts).
 */
import { TsmError } from '../errors/errors.js';
import { CRIU_FIX } from './binary.js';
import { criuLogNote } from './kept-logs.js';

/** What CRIU was asked to do (the log's wording depends on it). */
export type CriuOp = 'dump' | 'pre-dump' | 'restore' | 'check' | 'cpuinfo' | 'page-server' | 'lazy-pages';

export type CriuFailureReason =
  | 'tcp-established' // established TCP connection, dumped/restored without --tcp-established
  | 'external-unix-socket' // connected to a unix socket outside the dumped tree
  | 'device' // an open device CRIU cannot checkpoint
  | 'traced' // someone else ptraces a task (debugger, strace)
  | 'no-process' // the task to dump does not exist (any more)
  | 'shell-job' // the root task does not lead its session
  | 'terminal-held' // a task holds /dev/tty open while the container's pty is external (run -t)
  | 'pid-in-use' // restore: the PID is taken
  | 'iptables-missing' // iptables-restore not installed / not on PATH
  | 'file-changed' // restore: an open file changed since the dump
  | 'cpu-mismatch' // restore / cpuinfo check: this CPU lacks features of the dump host
  | 'criu-too-old' // images from a newer CRIU, or an option this CRIU does not know
  | 'kernel-feature' // the kernel lacks something CRIU needs (soft-dirty, ...)
  | 'interrupted' // runCriu only: timed out or cancelled
  | 'stalled' // killed by the watchdog: no progress, or past its deadline (watchdog.ts)
  | 'unknown';

export interface CriuFailure {
  reason: CriuFailureReason;
  /** One line: what went wrong, in plain words. */
  message: string;
  /** One line: what to do. */
  fix: string;
  /** The relevant log lines, as logged (at most ~20). */
  excerpt: string[];
  /** What the error message quotes: CRIU's last Error/Warn lines, sanitised (criuKeyLines). */
  keyLines?: string[];
}

/** Error lines CRIU logs on every run here that mean nothing for the outcome. */
export const HARMLESS_CRIU_ERRORS: readonly RegExp[] = [
  // needs CAP_SYS_RESOURCE (not granted in some containers/VMs); CRIU carries on
  /rlimit: Can't setup RLIMIT_NOFILE for self/,
];

export interface CriuLogLine {
  level: 'Error' | 'Warn';
  /** "criu/sk-inet.c:200" */
  source: string;
  /** The message after "): ". */
  text: string;
  /** The task prefix of restore logs ("  31366: Error ..."), if any. */
  pid?: number;
}

const LINE_RE = /^(?:\(\s*\d+\.\d+\)\s*)?(?:pie:\s*\d+:\s*)?(?:(\d+):\s+)?(Error|Warn)\s+\(([^)]*)\):\s?(.*)$/;
const MAX_ERRORS = 8;
const MAX_LINE = 400;

/** Parse one Error/Warn line of a CRIU log; null for any other line. */
export function parseCriuLogLine(line: string): CriuLogLine | null {
  const m = LINE_RE.exec(line.trimEnd());
  if (!m) return null;
  const out: CriuLogLine = { level: m[2] as 'Error' | 'Warn', source: m[3] ?? '', text: m[4] ?? '' };
  if (m[1] !== undefined) out.pid = Number(m[1]);
  return out;
}

function isHarmless(line: string): boolean {
  return HARMLESS_CRIU_ERRORS.some((re) => re.test(line));
}

function isBlank(line: string): boolean {
  return /^\s*(?:\(\s*\d+\.\d+\))?\s*(?:-+)?\s*$/.test(line);
}

function clip(line: string, max = MAX_LINE): string {
  const l = line.trimEnd();
  return l.length > max ? `${l.slice(0, max - 3)}...` : l;
}

function splitLines(text: string): string[] {
  return text.split(/\r?\n/);
}

/**
 * The Error lines of a CRIU log, each with up to `context` non-blank lines
 * logged before it (never reaching back past the previous reported error), as
 * one string per error ("ctx\nctx\nError ..."). Known-harmless errors are
 * skipped, repeats of the same error (same source and message, whatever the
 * timestamp) are reported once, and at most 8 errors are returned.
 */
export function extractCriuErrors(logText: string, context = 2): string[] {
  const lines = splitLines(logText);
  const out: string[] = [];
  const seen = new Set<string>();
  let floor = 0;
  for (let i = 0; i < lines.length && out.length < MAX_ERRORS; i++) {
    const line = lines[i] ?? '';
    const p = parseCriuLogLine(line);
    if (!p || p.level !== 'Error' || isHarmless(line)) continue;
    const key = `${p.source}\0${p.text}`;
    if (seen.has(key)) {
      floor = i + 1; // nor shown as the context of the next one
      continue;
    }
    seen.add(key);
    const ctx: string[] = [];
    for (let j = i - 1; j >= floor && ctx.length < context; j--) {
      const c = lines[j] ?? '';
      if (isBlank(c) || isHarmless(c)) continue;
      ctx.unshift(clip(c));
    }
    out.push([...ctx, clip(line)].join('\n'));
    floor = i + 1;
  }
  return out;
}

/** A log line made safe to show on a terminal: control characters and escapes become spaces, clipped. Pure. */
export function sanitiseLine(line: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const t = line.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, ' ').replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]+/g, ' ').replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/**
 * The key lines of a CRIU log: the last `n` distinct Error and Warn lines
 * (the harmless ones left out), without their timestamps, sanitised. Pure.
 */
export function criuKeyLines(logText: string, n = 3): string[] {
  const out: string[] = [];
  for (const raw of logText.split(/\r?\n/).reverse()) {
    const p = parseCriuLogLine(raw);
    if (!p || HARMLESS_CRIU_ERRORS.some((re) => re.test(raw))) continue;
    const line = sanitiseLine(`${p.level} (${p.source}): ${p.text}`);
    if (!out.includes(line)) out.unshift(line);
    if (out.length >= n) break;
  }
  return out;
}


// ---------------------------------------------------------------------------

interface Scan {
  op: CriuOp;
  /** The whole log (and/or stderr). */
  text: string;
  lines: string[];
  /** Non-harmless Error and Warn lines. */
  diag: Array<{ raw: string; p: CriuLogLine }>;
}

interface Hit {
  reason: CriuFailureReason;
  message: string;
  fix: string;
  /** The raw line that gave it away, if it is not an Error line. */
  line?: string;
}

type Rule = (s: Scan) => Hit | null;

/** First diag line whose text matches; returns the match and the raw line. */
function findDiag(s: Scan, re: RegExp, level?: 'Error' | 'Warn'): { m: RegExpExecArray; raw: string; p: CriuLogLine } | null {
  for (const d of s.diag) {
    if (level && d.p.level !== level) continue;
    const m = re.exec(d.p.text);
    if (m) return { m, raw: d.raw, p: d.p };
  }
  return null;
}

function findLine(s: Scan, re: RegExp): RegExpExecArray | null {
  for (const l of s.lines) {
    const m = re.exec(l);
    if (m) return m;
  }
  return null;
}

function oneLine(s: string, max = 200): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 3)}...` : t;
}

/** The task whose files were being dumped when the error came. */
function dumpingPid(s: Scan, beforeRaw: string): string | undefined {
  const idx = s.lines.indexOf(beforeRaw);
  for (let i = (idx < 0 ? s.lines.length : idx) - 1; i >= 0; i--) {
    const m = /Dumping opened files \(pid: (\d+)\)/.exec(s.lines[i] ?? '');
    if (m) return m[1];
  }
  return /Dump files \(pid: (\d+)\) failed/.exec(s.text)?.[1];
}

const GENERIC_ERROR =
  /Dumping FAILED|Restoring FAILED|Pre-dumping FAILED|FAILED\.$|failed with -1$|^exited, status=|Unable to open fd=|killed by signal|Can't wait or bad status|Unable to detach from|^Dump files \(pid/;

const RULES: Rule[] = [
  // before everything else: its Error lines also blame a kernel option (CONFIG_NETFILTER_XT_MARK)
  (s) => {
    const d =
      findDiag(s, /execvp\("((?:ip6?tables|iptables)(?:-legacy|-nft)?-(?:restore|save))", [^)]*\) failed: No such file or directory/) ??
      findDiag(s, /\b(ip6?tables(?:-legacy|-nft)?-(?:restore|save))\b.*(?:not found|No such file)/) ??
      findDiag(s, /Can't restore iptables dump - no legacy version present|Can't create iptables/);
    if (!d) return null;
    const tool = d.m[1] !== undefined && d.m[1].startsWith('ip') ? d.m[1] : 'iptables-restore';
    const what = s.op === 'restore' ? "to restore the container's firewall rules and unlock its network" : "to lock the container's network while it is dumped";
    return {
      reason: 'iptables-missing',
      message: `CRIU could not run ${tool} (not installed, or not on PATH), which it needs ${what}`,
      fix: 'install iptables (apt-get install iptables) and try again',
    };
  },
  (s) => {
    if (findDiag(s, /Connected TCP socket, consider using --tcp-established/)) {
      return {
        reason: 'tcp-established',
        message: 'the container has an established TCP connection, and CRIU checkpoints those only when asked to',
        fix: 'checkpoint with --tcp-established (the peer must still reach the same IP address after the restore), or close the connection first',
      };
    }
    if (findDiag(s, /Connected TCP socket in image/)) {
      return {
        reason: 'tcp-established',
        message: 'the checkpoint holds established TCP connections, and CRIU restores those only when asked to',
        fix: 'restore with --tcp-established (same IP address), or with --tcp-close to drop the connections',
      };
    }
    return null;
  },
  (s) => {
    const d =
      findDiag(s, /External socket is used|--ext-unix-sk/) ??
      findDiag(s, /(?:sk[ -])?unix:? Can't dump .*external|external (?:unix )?socket/i);
    if (!d) return null;
    const name = findLine(s, /Runaway socket: .*?\bname (\S+)/)?.[1];
    const which = name !== undefined && name !== '' && name !== '(null)' ? ` ${name}` : '';
    return {
      reason: 'external-unix-socket',
      message: `the container is connected to a unix socket${which} outside it (for example a host socket bind-mounted in), and CRIU cannot take the other end along`,
      fix: `close that connection (stop the client that uses${which || ' the socket'} inside the container) before checkpointing`,
    };
  },
  (s) => {
    const tun = findDiag(s, /Net namespace is required to dump tun link/);
    if (tun) {
      return {
        reason: 'device',
        message: 'a process holds /dev/net/tun open outside a private network namespace, and CRIU checkpoints TUN/TAP devices only inside one',
        fix: 'close /dev/net/tun before checkpointing, or give the workload its own network namespace',
      };
    }
    const d = findDiag(s, /Can't dump file (\d+) of that type \[(\w+)\](?: \((chr|blk)? ?(\d+:\d+)\))?/);
    if (d) {
      const fd = d.m[1] ?? '?';
      const kind = d.m[3] === 'blk' ? 'block device' : d.m[3] === 'chr' ? 'character device' : 'special file';
      const dev = d.m[4] !== undefined ? ` ${d.m[4]}` : '';
      const pid = dumpingPid(s, d.raw);
      const who = pid !== undefined ? `process ${pid}` : 'a process';
      const look = pid !== undefined ? ` (ls -l /proc/${pid}/fd/${fd} shows which)` : '';
      return {
        reason: 'device',
        message: `${who} holds a ${kind}${dev} open (fd ${fd}) that CRIU cannot checkpoint`,
        fix: `close the device in the container before checkpointing${look}`,
      };
    }
    const g = findDiag(s, /(?:char(?:acter)? device|unsupported (?:char(?:acter)? )?device|Can't handle .*device)/i, 'Error');
    if (g) {
      return {
        reason: 'device',
        message: `a process holds a device open that CRIU cannot checkpoint (${oneLine(g.p.text, 120)})`,
        fix: 'close the device in the container before checkpointing',
      };
    }
    return null;
  },
  (s) => {
    const d =
      findDiag(s, /Unable to interrupt task: (\d+) \(Operation not permitted\)/) ??
      findDiag(s, /(?:task|process) (\d+) is (?:being |already )?traced|TracerPid|Unable to seize (\d+)?|Can't seize (?:task )?(\d+)?|PTRACE_SEIZE.*(?:Operation not permitted|EPERM)/i);
    if (!d) return null;
    const pid = d.m[1] ?? d.m[2] ?? d.m[3];
    const who = pid !== undefined ? `process ${pid}` : 'a process';
    const look = pid !== undefined ? ` (grep TracerPid /proc/${pid}/status shows who)` : '';
    return {
      reason: 'traced',
      message: `${who} is being traced by another program (a debugger or strace), and CRIU has to be its only tracer`,
      fix: `detach the debugger or stop strace${look}, then checkpoint again`,
      line: d.raw,
    };
  },
  (s) => {
    const d =
      findDiag(s, /Unable to interrupt task: (\d+) \(No such process\)/) ??
      findDiag(s, /Failed to open \/proc\/(\d+)\/comm: No such file or directory/) ??
      findDiag(s, /Can't (?:open|read) \/proc\/(\d+)\/\S*: No such file or directory/);
    if (!d || s.op === 'restore') return null;
    return {
      reason: 'no-process',
      message: `process ${d.m[1] ?? '?'} does not exist (it exited before or during the checkpoint)`,
      fix: 'check that the container is still running (tsmigrate ps) and try again',
      line: d.raw,
    };
  },
  (s) => {
    const d = findDiag(s, /The root process (\d+) is not a session leader|session leader .* is outside|Consider using --shell-job/);
    if (!d) return null;
    const pid = d.m[1];
    return {
      reason: 'shell-job',
      message: `${pid !== undefined ? `process ${pid}` : 'the process'} does not lead its own session (it was started from a shell or a terminal), so its session is outside the checkpoint`,
      fix: 'start it with setsid (containers started by tsmigrate already are), or dump it as a shell job',
    };
  },
  (s) => {
    const d = findDiag(s, /ctty inheritance detected sid\/pgrp (\d+)/);
    if (!d) return null;
    return {
      reason: 'terminal-held',
      message:
        "a process holds /dev/tty open (busybox sh does, bash does not), and CRIU checkpoints that only when the terminal's master is in the checkpoint too: here the supervisor holds it",
      fix: 'run the shell as bash, or run the container without -t',
    };
  },
  (s) => {
    const d =
      findDiag(s, /Can't fork for (\d+): File exists/) ??
      findDiag(s, /PID (\d+) is busy|pid (\d+) is (?:busy|in use|already used)/i) ??
      findDiag(s, /clone3?.*(?:EEXIST|File exists)/) ??
      findDiag(s, /Pid (\d+) do not match expected (\d+)/);
    if (!d) return null;
    const pid = d.m[1] ?? d.m[2];
    const which = pid !== undefined ? `PID ${pid}` : 'a PID the checkpoint needs';
    return {
      reason: 'pid-in-use',
      message: `${which} is already taken in the target PID namespace, so the process cannot get its PID back (with tsmigrate's own PID namespaces this mostly means the checkpoint was restored twice)`,
      fix: `stop the copy that is already running${pid !== undefined ? ` (or whatever holds PID ${pid})` : ''} before restoring again`,
    };
  },
  (s) => {
    const d = findDiag(s, /File (\S+) has bad (size|mode|ctime|mtime|build-id|checksum)\b\s*(.*)$/);
    if (!d) return null;
    const file = `/${(d.m[1] ?? '').replace(/^\/+/, '')}`;
    const kind = d.m[2] ?? 'size';
    const detail = (d.m[3] ?? '').trim();
    const cmp = /^(\S+) \(expect(?:ed)? (\S+)\)$/.exec(detail);
    const what = cmp ? `${kind} now ${cmp[1] ?? '?'}, ${cmp[2] ?? '?'} at the checkpoint` : `bad ${kind}${detail !== '' ? ` ${detail}` : ''}`;
    return {
      reason: 'file-changed',
      message: `${file}, which the container held open, was changed or truncated after the checkpoint (${oneLine(what, 80)})`,
      fix: "keep files the container holds open inside its rootfs (they are captured with the checkpoint), or put the file back as it was; the checkpoint's upper layer has the container's own files",
    };
  },
  (s) => {
    const d = findDiag(s, /^cpu: .*(?:unsupported|mismatch|not compatible|incompatible|missing)/i);
    if (!d) return null;
    return {
      reason: 'cpu-mismatch',
      message: `this host's CPU lacks features the checkpointed processes may use (${oneLine(d.p.text.replace(/^cpu:\s*/, ''), 120)})`,
      fix: 'restore on a host with the same CPU model or a newer one',
    };
  },
  (s) => {
    const img = findDiag(s, /Not supported images version (\d+)|Unsupported image version|unknown image (?:format|magic)|magic mismatch/i);
    if (img) {
      return {
        reason: 'criu-too-old',
        message: `the checkpoint was written by a newer CRIU than this one (${oneLine(img.p.text, 80)})`,
        fix: CRIU_FIX,
      };
    }
    const opt = findLine(s, /unrecognized option '([^']*)'|invalid option -- '?([^'\s]*)'?/);
    if (opt) {
      return {
        reason: 'criu-too-old',
        message: `this CRIU does not know the option ${opt[1] ?? `-${opt[2] ?? '?'}`} (it is older than tsmigrate expects)`,
        fix: CRIU_FIX,
      };
    }
    const feat = findDiag(s, /Unknown feature (\S+)/);
    if (feat) {
      return { reason: 'criu-too-old', message: `this CRIU does not know the feature ${feat.m[1] ?? '?'}`, fix: CRIU_FIX };
    }
    return null;
  },
  (s) => {
    const dirty = findDiag(s, /Tracking memory is not available|Dirty tracking is OFF|soft-dirty.*not (?:supported|available)/i);
    if (dirty) {
      return {
        reason: 'kernel-feature',
        message: 'this kernel has no soft-dirty memory tracking, which pre-dump and --track-mem need',
        fix: 'take a plain checkpoint (no pre-dump, no memory tracking), or use a kernel built with CONFIG_MEM_SOFT_DIRTY',
        line: dirty.raw,
      };
    }
    const bug = findDiag(s, /BUG at (criu\/mem\.c:\d+)/);
    if (bug) {
      return {
        reason: 'kernel-feature',
        message: `CRIU aborted in its memory-tracking code (BUG at ${bug.m[1] ?? 'criu/mem.c'}), which is what it does when the kernel has no soft-dirty memory tracking`,
        fix: 'take a plain checkpoint (no pre-dump, no memory tracking), or use a kernel built with CONFIG_MEM_SOFT_DIRTY',
      };
    }
    const k = findDiag(
      s,
      /kernel (?:does ?n[o']?t|doesn't) support|not supported by (?:the |this |your )?kernel|(?:isn't|is not) supported|no kernel support|CONFIG_[A-Z0-9_]+|Function not implemented|ENOSYS/i,
      'Error',
    );
    if (k) {
      return {
        reason: 'kernel-feature',
        message: `the kernel lacks a feature CRIU needs here (${oneLine(k.p.text, 140)})`,
        fix: "run 'criu check --all' to see what is missing, then use a kernel that has it (or avoid the option that needs it)",
        line: k.raw,
      };
    }
    return null;
  },
];

function excerptFor(s: Scan, hit: Hit | null): string[] {
  const blocks = extractCriuErrors(s.text, 2);
  const lines: string[] = [];
  if (hit?.line !== undefined && !blocks.some((b) => b.split('\n').includes(clip(hit.line ?? '')))) lines.push(clip(hit.line));
  for (const b of blocks) for (const l of b.split('\n')) if (lines.length < 20 && !lines.includes(l)) lines.push(l);
  if (lines.length === 0) {
    // nothing in CRIU's format (e.g. only stderr): the last non-blank lines
    for (const l of s.lines.filter((x) => !isBlank(x) && !isHarmless(x)).slice(-5)) lines.push(clip(l));
  }
  return lines;
}

/**
 * Map a failed CRIU run's log (or stderr, or both concatenated) to a reason,
 * a one-line message and a one-line fix. Pure.
 */
export function explainCriuFailure(op: CriuOp, logText: string): CriuFailure {
  const lines = splitLines(logText);
  const diag: Scan['diag'] = [];
  for (const raw of lines) {
    const p = parseCriuLogLine(raw);
    if (p && !isHarmless(raw)) diag.push({ raw, p });
  }
  const s: Scan = { op, text: logText, lines, diag };
  for (const rule of RULES) {
    const hit = rule(s);
    if (hit) return { reason: hit.reason, message: oneLine(hit.message, 400), fix: oneLine(hit.fix, 400), excerpt: excerptFor(s, hit), keyLines: criuKeyLines(logText) };
  }
  const errors = diag.filter((d) => d.p.level === 'Error');
  const first = errors.find((d) => !GENERIC_ERROR.test(d.p.text)) ?? errors[0];
  const distinct = new Set(errors.map((d) => `${d.p.source}\0${d.p.text}`)).size;
  let message: string;
  if (first) {
    const more = distinct > 1 ? ` (and ${distinct - 1} more error${distinct > 2 ? 's' : ''})` : '';
    message = `CRIU says: ${oneLine(first.p.text, 200)}${more}`;
  } else {
    const tail = lines.filter((l) => !isBlank(l) && !isHarmless(l)).slice(-1)[0];
    message = tail !== undefined ? `CRIU logged no error; its last words: ${oneLine(tail, 200)}` : 'CRIU logged no error';
  }
  return { reason: 'unknown', message, fix: 'read the CRIU log for the details', excerpt: excerptFor(s, null), keyLines: criuKeyLines(logText) };
}

/** The last `n` non-blank lines of a log, clipped, oldest first. Pure. */
export function lastLogLines(logText: string, n = 3, max = 200): string[] {
  return splitLines(logText).filter((l) => !isBlank(l)).slice(-n).map((l) => clip(l, max));
}

/**
 * The failure of a CRIU run its watchdog killed (watchdog.ts): what stopped,
 * after how long, and CRIU's last log lines, quoted in the message itself
 * (the CLI prints only the message and the fix). Pure.
 */
export function stoppedCriuFailure(
  x: { kind: 'deadline' | 'stalled'; afterMs: number; quietMs: number; deadline: { hardMs: number; why: string } },
  logText: string,
  fix: string,
): CriuFailure {
  const s = (ms: number) => `${Math.round(ms / 100) / 10} s`;
  const what = x.kind === 'stalled'
    ? `CRIU stopped making progress (nothing logged, written or computed for ${s(x.quietMs)}) and was killed after ${s(x.afterMs)}`
    : `CRIU stopped making progress within its deadline (${s(x.deadline.hardMs)}: ${x.deadline.why}) and was killed after ${s(x.afterMs)}`;
  const last = lastLogLines(logText);
  const quoted = last.length > 0 ? `; its last log lines: ${last.map((l) => `"${l.trim()}"`).join(' | ')}` : '; it logged nothing';
  return { reason: 'stalled', message: `${what}${quoted}`, fix, excerpt: lastLogLines(logText, 20, MAX_LINE) };
}

/**
 * A failed CRIU run: TsmError code ECRIU, the one-line explanation as message
 * and fix, plus the reason, the log excerpt and where the full log is.
 */
export class CriuError extends TsmError {
  readonly op: CriuOp;
  readonly reason: CriuFailureReason;
  readonly excerpt: string[];
  /** The lines the message quotes. */
  readonly keyLines: string[];
  /** The CRIU log file, when there is one: the kept copy (kept-logs.ts) when it could be kept. */
  readonly logPath: string | undefined;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  constructor(
    op: CriuOp,
    failure: CriuFailure,
    opts: { logPath?: string; exitCode?: number; signal?: string; cause?: unknown } = {},
  ) {
    const where = opts.logPath !== undefined ? ` ${criuLogNote(opts.logPath)}` : '';
    const key = failure.keyLines ?? [];
    const said = key.length > 0 ? `; CRIU logged: ${key.map((l) => `"${l}"`).join(' | ')}` : '';
    super('ECRIU', `criu ${op} failed: ${failure.message}${said}`, { fix: `${failure.fix}${where}`, cause: opts.cause });
    this.op = op;
    this.reason = failure.reason;
    this.excerpt = failure.excerpt;
    this.keyLines = key;
    this.logPath = opts.logPath;
    this.exitCode = opts.exitCode;
    this.signal = opts.signal;
  }
}

export function isCriuError(e: unknown, reason?: CriuFailureReason): e is CriuError {
  return e instanceof CriuError && (reason === undefined || e.reason === reason);
}
