import { promises as fs } from 'node:fs';

/** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or undefined if gone. */
export async function procStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19]
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is the same process that was recorded (not a recycled pid). */
export async function isSameProcess(pid: number | undefined, startTime: string | undefined): Promise<boolean> {
  if (!pid || pid <= 0) return false;
  const st = await procStartTime(pid);
  return st !== undefined && (startTime === undefined || st === startTime);
}

export async function waitFor(pred: () => Promise<boolean>, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * The pipe:[inode] behind /proc/PID/fd/N, if it is a pipe. Right after an exec the
 * kernel may briefly refuse /proc/PID/fd (the exec is still finishing): retry a little.
 */
export async function fdPipe(pid: number, fd: number, timeoutMs = 2000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const link = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (/^pipe:\[\d+\]$/.test(link)) return link;
    // not a pipe yet: the init may still be between the clone and the dup2 of its stdio
    if (Date.now() > deadline || !(await procStartTime(pid))) return undefined;
    await new Promise((r) => setTimeout(r, 10));
  }
}
