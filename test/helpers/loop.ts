import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A real block device for throttle tests: a loop device over a sparse file (losetup, from the mount package). */
export interface LoopDevice {
  /** /dev/loopN */
  dev: string;
  /** "7:N" */
  majmin: string;
  detach(): void;
}

export function attachLoop(sizeMiB = 8): LoopDevice {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-loop-'));
  const file = path.join(dir, 'disk');
  writeFileSync(file, '');
  truncateSync(file, sizeMiB << 20);
  let dev = '';
  // another process may take the free device between losetup's lookup and its attach
  for (let i = 0; i < 5 && !dev; i++) {
    try {
      dev = execFileSync('losetup', ['--find', '--show', file], { encoding: 'utf8' }).trim();
    } catch (e) {
      if (i === 4) throw e;
    }
  }
  const rdev = statSync(dev, { bigint: true }).rdev;
  const majmin = `${(rdev >> 8n) & 0xfffn}:${(rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)}`;
  return {
    dev,
    majmin,
    detach() {
      try {
        execFileSync('losetup', ['--detach', dev]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** A block device node for `majmin` at a path of our choosing (a device "found by path" on each host). */
export function deviceNode(at: string, majmin: string): void {
  const [major, minor] = majmin.split(':') as [string, string];
  rmSync(at, { force: true });
  execFileSync('mknod', [at, 'b', major, minor]);
}

/**
 * Seconds a direct read of `bytes` from `dev` takes in the blkio/io cgroup `cgroupDir`
 * (the reader joins it before it reads: it waits for a line on stdin first).
 */
export async function timedDirectRead(dev: string, bytes: number, cgroupDir?: string): Promise<number> {
  const child = spawn('sh', ['-c', 'read _; exec "$@"', 'sh', 'dd', `if=${dev}`, 'of=/dev/null', 'bs=64k', `count=${bytes / 65536}`, 'iflag=direct'], { stdio: ['pipe', 'ignore', 'pipe'] });
  const done = new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (cgroupDir) writeFileSync(path.join(cgroupDir, 'cgroup.procs'), String(child.pid));
  const t0 = performance.now();
  child.stdin!.end('go\n');
  const code = await done;
  if (code !== 0) throw new Error(`dd exited ${code}`);
  return (performance.now() - t0) / 1000;
}
