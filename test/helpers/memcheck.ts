import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cliOk, REPO } from './cli.js';
import { busyboxRootfs } from './images.js';

const SOURCE = path.join(REPO, 'test/fixtures/memcheck.c');

/** The busybox rootfs with /bin/memcheck (test/fixtures/memcheck.c, built static), made once per version of the source. */
export function memcheckRootfs(): string {
  const hash = createHash('sha256').update(readFileSync(SOURCE)).digest('hex').slice(0, 12);
  const dir = path.join(tmpdir(), `tsm-memcheck-${hash}`);
  if (existsSync(path.join(dir, 'bin/memcheck'))) return dir;
  const tmp = `${dir}.${randomBytes(4).toString('hex')}`;
  execFileSync('cp', ['-a', busyboxRootfs(), tmp]);
  execFileSync('gcc', ['-static', '-O2', '-Wall', '-o', path.join(tmp, 'bin/memcheck'), SOURCE]);
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another run made it first
  }
  return dir;
}

export async function importMemcheck(root: string, name = 'memcheck'): Promise<void> {
  await cliOk(root, ['image', 'import', name, memcheckRootfs()], { timeoutMs: 120000 });
}

/** A memcheck container's command; its status file has a path of its own, so its processes are told apart from any other's. */
export function memcheckWorkload(mib = 16): { argv: string[]; status: string } {
  const status = `/tmp/memcheck-${randomBytes(4).toString('hex')}`;
  return { argv: ['/bin/memcheck', String(mib), status], status };
}

export type MemcheckStatus = { ok: true; pass: number; sum: string } | { ok: false; line: string };

/** What the workload whose init is `pid` (a host pid) last wrote; undefined before its first pass. */
export function readMemcheck(pid: number, status: string): MemcheckStatus | undefined {
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/root${status}`, 'utf8').trim();
  } catch {
    return undefined;
  }
  const m = /^OK (\d+) ([0-9a-f]{16})$/.exec(line);
  return m ? { ok: true, pass: Number(m[1]), sum: m[2]! } : { ok: false, line };
}
