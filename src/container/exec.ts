import { spawn } from 'node:child_process';
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
}

/** Pure: the tsm-shim exec argv. The process joins every cgroup of the container and its namespaces. */
export function shimExecArgs(initPid: number, cgroupPaths: Record<string, string>, env: readonly string[], req: ExecRequest, security: string[] = []): string[] {
  const a = ['exec', '--pid', String(initPid), ...security];
  for (const dir of Object.values(cgroupPaths)) a.push('--cgroup-procs', path.join(dir, 'cgroup.procs'));
  a.push('--cwd', req.workdir ?? '/');
  if (req.user) a.push('--user', `${req.user.uid}:${req.user.gid}`);
  for (const e of [...env, ...(req.env ?? [])]) a.push('--env', e);
  return [...a, '--', ...req.command];
}

/** Run a command in a running container; resolves to its exit code. stdio: the caller's (inherit) or captured. */
export async function execInContainer(
  rt: Runtime,
  req: ExecRequest,
  stdio: 'inherit' | 'pipe' = 'inherit',
): Promise<{ code: number; stdout: string; stderr: string }> {
  requireRoot('exec in a container');
  if (req.command.length === 0) throw new TsmError('EINVAL_ARG', 'no command given', { fix: 'put the command after --' });
  const view = await loadView(rt, req.name);
  assertAllowed(view, 'exec');
  // the process joins with the container's profile: the same capabilities, no_new_privs and filter as its init
  const profile = profileOf(view.config);
  const seccompFile = profile.seccomp.compiled ? path.join(rt.paths.container(req.name), SECCOMP_RULES_FILE) : undefined;
  const security = view.config.security ? securityShimArgs(profile, seccompFile) : [];
  const args = shimExecArgs(view.state.initPid!, view.state.cgroupPaths ?? {}, view.config.env, req, security);
  const child = spawn(shimPath(), args, { stdio: stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, sig) => resolve(c ?? 128 + (sig ? 9 : 0)));
  });
  return { code, stdout, stderr };
}
