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
