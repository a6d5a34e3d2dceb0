import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import type { Runtime } from '../runtime/context.js';
import { shimPath } from '../shim/locate.js';
import { requireRoot } from '../util/root.js';
import { profileOf, SECCOMP_RULES_FILE } from '../security/resolve.js';
import { securityShimArgs } from '../security/shim-args.js';
import { TsmError } from '../errors/errors.js';
import { assertAllowed, loadView } from './view.js';

export interface ExecRequest {
  name: string;
  command: string[];
  env?: string[];
  workdir?: string;
  user?: { uid: number; gid: number };
  /** -i: the caller's stdin reaches the process (else it reads /dev/null). */
  interactive?: boolean;
  /** -t: the process gets a pty of the container's own devpts; the caller's terminal is relayed, never handed over. */
  tty?: boolean;
}

/** Pure: the tsm-shim exec argv. The process joins every cgroup of the container and its namespaces. */
export function shimExecArgs(initPid: number, cgroupPaths: Record<string, string>, env: readonly string[], req: ExecRequest, security: string[] = []): string[] {
  const a = ['exec', '--pid', String(initPid), ...security];
  for (const dir of Object.values(cgroupPaths)) a.push('--cgroup-procs', path.join(dir, 'cgroup.procs'));
  a.push('--cwd', req.workdir ?? '/');
  if (req.user) a.push('--user', `${req.user.uid}:${req.user.gid}`);
  const all = [...env, ...(req.env ?? [])];
  // as Podman does: a terminal gets a TERM unless the container or the caller set one
  if (req.tty && !all.some((e) => e.startsWith('TERM='))) all.push('TERM=xterm');
  for (const e of all) a.push('--env', e);
  if (req.interactive) a.push('--interactive');
  if (req.tty) a.push('--tty');
  return [...a, '--', ...req.command];
}

/** Pure: -it needs a terminal to read from (Docker's rule; Podman only warns, and then relays a pipe into a pty). */
export function checkTerminal(req: Pick<ExecRequest, 'interactive' | 'tty'>, stdinIsTty: boolean): void {
  if (req.tty && req.interactive && !stdinIsTty) {
    throw new TsmError('EINVAL_ARG', '-i -t needs a terminal on stdin, and stdin is not one', {
      fix: 'run it from a terminal, or drop -t to relay stdin through a pipe',
    });
  }
}

export interface ExecOptions {
  /** inherit: the shim relays the caller's stdio (the CLI); pipe: output captured, no stdin. */
  stdio?: 'inherit' | 'pipe';
  /** Called once the shim runs, with a way to signal it (it forwards signals to the process). */
  onStart?: (signal: (sig: NodeJS.Signals) => void) => void;
}

/** Run a command in a running container; resolves to its exit code. */
export async function execInContainer(rt: Runtime, req: ExecRequest, opts: ExecOptions = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  requireRoot('exec in a container');
  if (req.command.length === 0) throw new TsmError('EINVAL_ARG', 'no command given', { fix: 'put the command after --' });
  const view = await loadView(rt, req.name);
  assertAllowed(view, 'exec');
  // the process joins with the container's profile: the same capabilities, no_new_privs and filter as its init
  const profile = profileOf(view.config);
  const seccompFile = profile.seccomp.compiled ? path.join(rt.paths.container(req.name), SECCOMP_RULES_FILE) : undefined;
  const security = view.config.security ? securityShimArgs(profile, seccompFile) : [];
  const args = shimExecArgs(view.state.initPid!, view.state.cgroupPaths ?? {}, view.config.env, req, security);
  const inherit = (opts.stdio ?? 'inherit') === 'inherit';
  const child = spawn(shimPath(rt.tools.shim), args, { stdio: inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
  opts.onStart?.((sig) => child.kill(sig));
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, sig) => resolve(c ?? 128 + (sig ? constants.signals[sig] : 0)));
  });
  return { code, stdout, stderr };
}
