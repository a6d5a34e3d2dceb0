/** Running `ip` (on the host or inside a container's network namespace) with argument arrays. */
import { execa } from 'execa';
import { TsmError } from '../errors/errors.js';

export interface RunResult {
  ok: boolean;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}

function firstLine(s: string): string {
  return (s.split('\n').find((l) => l.trim() !== '') ?? '').trim();
}

/** Run a command; never throws for a non-zero exit (only when it cannot be started at all). */
export async function runQuiet(cmd: string, args: readonly string[]): Promise<RunResult> {
  const r = await execa(cmd, args, { reject: false, timeout: 15_000, stdin: 'ignore' });
  if (r.failed && r.exitCode === undefined) {
    const code = (r as { code?: string }).code;
    if (code === 'ENOENT') {
      throw new TsmError('ENETWORK', `'${cmd}' was not found`, {
        fix: cmd === 'nsenter' ? 'install util-linux' : 'install iproute2',
        cause: r,
      });
    }
    throw new TsmError('ENETWORK', `${cmd} ${args.join(' ')} did not finish: ${firstLine(String(r.message ?? ""))}`, {
      fix: 'check that the command works when run by hand',
      cause: r,
    });
  }
  return { ok: r.exitCode === 0, exitCode: r.exitCode, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/** Run a command; a non-zero exit is a one-line ENETWORK naming the command and its first stderr line. */
export async function run(cmd: string, args: readonly string[], fix = 'run as root; check `ip link` and `ip addr`'): Promise<string> {
  const r = await runQuiet(cmd, args);
  if (!r.ok) {
    throw new TsmError('ENETWORK', `${cmd} ${args.join(' ')} failed: ${firstLine(r.stderr) || `exit code ${r.exitCode}`}`, { fix });
  }
  return r.stdout;
}

/** `ip ARGS` on the host. */
export function ip(args: readonly string[], fix?: string): Promise<string> {
  return run('ip', args, fix);
}

export function ipQuiet(args: readonly string[]): Promise<RunResult> {
  return runQuiet('ip', args);
}

export function netnsPath(pid: number): string {
  return `/proc/${pid}/ns/net`;
}

/** `ip ARGS` inside the network namespace of `pid`. */
export function ipIn(pid: number, args: readonly string[], fix?: string): Promise<string> {
  return run('nsenter', [`--net=${netnsPath(pid)}`, 'ip', ...args], fix);
}

export function ipInQuiet(pid: number, args: readonly string[]): Promise<RunResult> {
  return runQuiet('nsenter', [`--net=${netnsPath(pid)}`, 'ip', ...args]);
}

/** Parse `ip -j` output (empty output = empty list). */
export function parseIpJson<T>(text: string): T[] {
  const t = text.trim();
  if (t === '') return [];
  const v: unknown = JSON.parse(t);
  return Array.isArray(v) ? (v as T[]) : [];
}

/** A missing device per `ip`'s stderr. */
export function isNoSuchDevice(stderr: string): boolean {
  return /does not exist|Cannot find device|No such device/i.test(stderr);
}
