import { promises as fs } from 'node:fs';
import type { NetworkPlan } from '../network/setup.js';
import { isSameProcess } from './proc.js';
import type { ContainerRuntimeState } from './types.js';

/**
 * How CRIU names the init's stdout and stderr, recorded at start and after every restore: the
 * pipes to the supervisor ('pipe:[INODE]' each), or for a container run with -t its pty, the same
 * 'tty[RDEV:DEV]' (hex, as CRIU prints them) for both.
 *
 * The pipes are the ones the supervisor handed the init, as it reports them (native/shim/run.c,
 * restore.c), not what the init's fds 1 and 2 are now: it may have redirected them to a file or
 * closed them, and a child may still write to the pipe. A container started before the shim
 * reported them has them in state.json only if its init still had them at fds 1 and 2 when `run`
 * looked; for the others they are read from the supervisor's descriptors (its only pipes are the
 * read ends of those two, stdout's first).
 */
export interface StdioKeys {
  stdout: string;
  stderr: string;
}

export const PIPE_KEY = /^pipe:\[\d+\]$/;
export const TTY_KEY = /^tty\[[0-9a-f]+:[0-9a-f]+\]$/;

/** Pure: the keys are a pty's (the supervisor holds its master). */
export function isTtyStdio(s: StdioKeys): boolean {
  return TTY_KEY.test(s.stdout) && s.stderr === s.stdout;
}

/** Pure: well-formed keys of either kind. */
export function validStdio(s: unknown): s is StdioKeys {
  const k = s as Partial<StdioKeys> | null;
  if (!k || typeof k.stdout !== 'string' || typeof k.stderr !== 'string') return false;
  return (PIPE_KEY.test(k.stdout) && PIPE_KEY.test(k.stderr)) || isTtyStdio(k as StdioKeys);
}

/** Unix98 pty slaves: majors 136-143. */
const isPtySlave = (rdev: number) => {
  const major = (rdev >> 8) & 0xfff;
  return major >= 136 && major <= 143;
};

/** The tty[RDEV:DEV] key of a pty slave open as /proc/PID/fd/FD, as CRIU would name it. */
export async function fdTty(pid: number, fd: number): Promise<string | undefined> {
  const st = await fs.stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
  if (!st?.isCharacterDevice() || !isPtySlave(st.rdev)) return undefined;
  return `tty[${st.rdev.toString(16)}:${st.dev.toString(16)}]`;
}

/** A run -t init's stdio keys now (its pty), or undefined if fd 1 is no pty slave. */
export async function readTtyStdio(pid: number): Promise<StdioKeys | undefined> {
  const k = await fdTty(pid, 1);
  return k ? { stdout: k, stderr: k } : undefined;
}

/** Pure: what a dump names as external: the bridge's veth, the pty whose master the supervisor holds. */
export function dumpExternals(network: NetworkPlan | undefined, stdio: StdioKeys): string[] {
  const out: string[] = [];
  if (network?.mode === 'bridge' && network.hostVeth) out.push(`veth[eth0]:${network.hostVeth}`);
  if (isTtyStdio(stdio)) out.push(stdio.stdout);
  return out;
}

/** Pure: the descriptors the restore shim hands CRIU for the init's stdio (see native/shim/restore.c). */
export function stdioInheritFds(stdio: StdioKeys): Array<{ fd: number; key: string }> {
  if (isTtyStdio(stdio)) return [{ fd: 3, key: stdio.stdout }];
  return [
    { fd: 3, key: stdio.stdout },
    { fd: 4, key: stdio.stderr },
  ];
}

/**
 * A pipe the supervisor no longer holds had no writer left (it read to the
 * end and closed it): nothing in the container holds it, so any key that
 * matches no pipe is as good. The kernel never numbers an inode 0.
 */
export const NO_PIPE = 'pipe:[0]';

/** The pipes among a process's descriptors, in descriptor order. */
export async function pipesOf(pid: number): Promise<string[]> {
  const dir = `/proc/${pid}/fd`;
  const fds = (await fs.readdir(dir).catch(() => [] as string[])).map(Number).filter((n) => Number.isInteger(n)).sort((a, b) => a - b);
  const links = await Promise.all(fds.map((fd) => fs.readlink(`${dir}/${fd}`).catch(() => '')));
  return links.filter((l) => PIPE_KEY.test(l));
}

/**
 * The stdio keys of a running container: as recorded, else (recorded before the supervisor
 * reported them) a pty's read from its init, pipes from its supervisor; undefined when gone.
 */
export async function stdioOf(state: Pick<ContainerRuntimeState, 'stdio' | 'shimPid' | 'initPid'>, tty: boolean): Promise<StdioKeys | undefined> {
  if (state.stdio) return state.stdio;
  if (tty) return state.initPid ? readTtyStdio(state.initPid) : undefined;
  if (!state.shimPid || !(await isSameProcess(state.shimPid, undefined))) return undefined;
  const comm = await fs.readFile(`/proc/${state.shimPid}/comm`, 'utf8').catch(() => '');
  if (comm.trim() !== 'tsm-shim') return undefined;
  const pipes = await pipesOf(state.shimPid);
  if (pipes.length > 2) return undefined;
  return { stdout: pipes[0] ?? NO_PIPE, stderr: pipes[1] ?? NO_PIPE };
}
