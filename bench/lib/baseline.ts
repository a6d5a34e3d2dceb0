/**
 * The baseline: a plain `criu dump --leave-running` of the container into a
 * tmpfs directory, timed from spawn to exit. CRIU freezes the cgroup itself,
 * so that whole run is the time the container is frozen in a plain dump.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CriuBinary } from '../../src/criu/binary.js';
import type { Workload } from './workload.js';

export interface BaselineRun {
  ms: number;
  /** Bytes of the image files CRIU wrote. */
  imageBytes: number;
}

export async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(dir, e.name))).size;
  }
  return n;
}

/**
 * A plain `criu dump` of `pid` into `dir`, timed from spawn to exit. CRIU freezes
 * the cgroup itself. With leaveRunning the tree goes on; without, it is gone.
 */
export async function timedCriuDump(
  criu: CriuBinary,
  o: { pid: number; freezerDir: string; dir: string; leaveRunning: boolean },
): Promise<{ ms: number; bytes: number }> {
  const argv = ['dump', ...(o.leaveRunning ? ['--leave-running'] : []), '--freeze-cgroup', o.freezerDir, '--manage-cgroups=soft',
    '-t', String(o.pid), '-D', o.dir, '-o', 'dump.log'];
  const t0 = performance.now();
  const code = await new Promise<number | null>((resolve, reject) => {
    // its own process group: a Ctrl-C must not kill CRIU mid-dump (the cgroup would stay frozen);
    // the bench stops after this step instead
    const child = spawn(criu.path, argv, { stdio: 'ignore', detached: true });
    child.once('error', reject);
    child.once('exit', (c) => resolve(c));
  });
  const ms = performance.now() - t0;
  if (code !== 0) {
    const log = await fs.readFile(path.join(o.dir, 'dump.log'), 'utf8').catch(() => '');
    throw new Error(`plain criu dump exited ${String(code)}:\n${log.split('\n').slice(-15).join('\n')}`);
  }
  return { ms, bytes: await dirBytes(o.dir) };
}

/** One plain dump into a fresh directory under `base` (a tmpfs); the images are removed afterwards. */
export async function plainDump(criu: CriuBinary, w: Workload, base: string): Promise<BaselineRun> {
  const dir = await fs.mkdtemp(path.join(base, 'plain-'));
  try {
    const r = await timedCriuDump(criu, { pid: w.initPid, freezerDir: w.freezerDir, dir, leaveRunning: true });
    return { ms: r.ms, imageBytes: r.bytes };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
