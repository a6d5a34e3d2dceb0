import { promises as fs } from 'node:fs';
import type { NetworkPlan } from '../network/setup.js';
import { fdPipe } from './proc.js';

/**
 * How CRIU names the init's stdout and stderr, recorded at start and after every restore: the
 * pipes to the supervisor ('pipe:[INODE]' each), or for a container run with -t its pty, the same
 * 'tty[RDEV:DEV]' (hex, as CRIU prints them) for both.
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

/** The init's stdio keys now, or undefined if they are not what its config says. */
export async function readStdio(pid: number, tty: boolean): Promise<StdioKeys | undefined> {
  if (tty) {
    const k = await fdTty(pid, 1);
    return k ? { stdout: k, stderr: k } : undefined;
  }
  const [stdout, stderr] = await Promise.all([fdPipe(pid, 1), fdPipe(pid, 2)]);
  return stdout && stderr ? { stdout, stderr } : undefined;
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
