/**
 * The move benchmark's baselines without tsmigrate: a plain `criu dump` that
 * kills the tree, a plain `criu restore` of it (as the child of a fresh
 * tsm-shim, so tsmigrate manages the container again afterwards), the link
 * alone (ssh2, on an open connection), and the naive pipeline's transfer
 * (tar | zstd -1 | OpenSSH | zstd -d | tar).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { AgentApi } from '../../src/agent/api.js';
import { procStartTime, waitFor } from '../../src/container/proc.js';
import type { CriuBinary } from '../../src/criu/binary.js';
import type { Runtime } from '../../src/runtime/context.js';
import { startShim } from '../../src/shim/spawn.js';
import type { RigHost } from './move-rig.js';
import { timedCriuDump } from './baseline.js';


async function logTail(file: string): Promise<string> {
  const log = await fs.readFile(file, 'utf8').catch(() => '');
  return log.split('\n').filter((l) => /Error|error/.test(l)).slice(-10).join('\n') || log.split('\n').slice(-10).join('\n');
}

/** What a plain dump or restore of a container needs from its tsmigrate records. */
export interface Target {
  name: string;
  initPid: number;
  freezerDir: string;
  merged: string;
  stdout: string;
  stderr: string;
}

export async function target(rt: Runtime, name: string): Promise<Target> {
  const s = await rt.store.state(name);
  const freezerDir = s.cgroupPaths?.['freezer'] ?? s.cgroupPaths?.['unified'];
  if (!s.initPid || !freezerDir || !s.stdio) throw new Error(`state.json of ${name} has no initPid, freezer cgroup or stdio`);
  return { name, initPid: s.initPid, freezerDir, merged: s.rootfs.merged, stdout: s.stdio.stdout, stderr: s.stdio.stderr };
}

/**
 * A plain `criu dump` (without --leave-running: the tree is gone afterwards) into
 * `dir`, timed from spawn to exit. CRIU freezes the cgroup itself.
 */
export async function plainKillDump(criu: CriuBinary, t: Target, dir: string): Promise<{ ms: number; bytes: number }> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  return timedCriuDump(criu, { pid: t.initPid, freezerDir: t.freezerDir, dir, leaveRunning: false });
}

/**
 * After a killing dump: wait until the old shim recorded the exit, then forget it
 * (the container is about to be restored under the same name).
 */
export async function awaitDumpedExit(rt: Runtime, name: string): Promise<void> {
  const exitFile = path.join(rt.paths.container(name), 'exit.json');
  const ok = await waitFor(async () => fs.stat(exitFile).then(() => true, () => false), 10_000);
  if (!ok) throw new Error(`${name}: the shim did not record the exit of the dumped tree`);
  await rt.store.clearExit(name);
}

/**
 * A plain `criu restore` of `dir` into the container's (still mounted) rootfs, as
 * the child of a fresh tsm-shim in restore mode: the flags tsmigrate's restore
 * uses, without its cgroup, mount and network set-up (the dumped container's
 * cgroups and rootfs still exist). Timed from the shim's spawn until it reported
 * the restored init (CRIU has exited by then). The records are updated so that
 * tsmigrate manages the restored container (rm -f) again.
 */
export async function plainRestore(rt: Runtime, criu: CriuBinary, t: Target, dir: string): Promise<{ ms: number }> {
  const pidfile = path.join(dir, 'restored.pid');
  const argv = ['restore', '-D', dir, '-o', 'restore.log', '--root', t.merged, '--restore-detached', '--restore-sibling', '--pidfile', pidfile,
    '--manage-cgroups=soft', '--inherit-fd', `fd[3]:${t.stdout}`, '--inherit-fd', `fd[4]:${t.stderr}`];
  const cdir = rt.paths.container(t.name);
  const t0 = performance.now();
  const shim = await startShim(rt.tools.shim, 'restore', ['--pidfile', pidfile, '--', criu.path, ...argv], cdir).catch(async (e: Error) => {
    throw new Error(`plain criu restore of ${t.name} failed: ${e.message}\n${await logTail(path.join(dir, 'restore.log'))}`);
  });
  const elapsed = performance.now() - t0;
  const s = await rt.store.state(t.name);
  Object.assign(s, { initPid: shim.initPid, shimPid: shim.shimPid, initStartTime: await procStartTime(shim.initPid), stdio: shim.stdio });
  await rt.store.saveState(t.name, s);
  return { ms: elapsed };
}

/**
 * The link alone: `bytes` of incompressible data through an already open
 * ssh2 connection to the peer's agent (which checks it with CRC-32, as a
 * move does, and discards it), after a warm-up of `warmupBytes`. Only the
 * `bytes` are timed.
 */
export async function linkTime(agent: AgentApi, bytes: number, warmupBytes = 8 << 20): Promise<{ ms: number; bytes: number }> {
  const chunk = randomBytes(1 << 20);
  const stream = (n: number) =>
    Readable.from((function* () {
      for (let left = n; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
    })());
  await agent.probe({ bytes: warmupBytes, checksum: 'crc32' }, stream(warmupBytes));
  const t0 = performance.now();
  const r = await agent.probe({ bytes, checksum: 'crc32' }, stream(bytes));
  const elapsed = performance.now() - t0;
  if (r.bytes !== bytes) throw new Error(`the peer received ${r.bytes} of ${bytes} bytes`);
  return { ms: elapsed, bytes };
}

const SAFE_PATH = /^\/[A-Za-z0-9/._-]+$/;

/**
 * The naive pipeline's transfer: `tar -C dir -cf - . | zstd -1 | ssh ... 'mkdir -p X && zstd -d | tar -C X -xf -'`
 * with the OpenSSH client and the rig's key and known_hosts, timed from the first
 * spawn until the last process has exited (it includes the SSH handshake).
 * Argument arrays, no shell; the three processes are joined by kernel pipes as a
 * shell joins them (execa's .pipe() copies every byte through this process and
 * buffers it, which made the pipeline 2x slower than the same one in sh).
 */
export async function naiveTransfer(dir: string, h: RigHost, remoteDir: string): Promise<{ ms: number }> {
  if (!SAFE_PATH.test(remoteDir)) throw new Error(`unsafe remote directory ${remoteDir}`);
  const ssh = [
    '-i', h.identity, '-p', String(h.port),
    '-o', `UserKnownHostsFile=${h.knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'LogLevel=ERROR',
    `root@${h.addr}`,
    `mkdir -p ${remoteDir} && zstd -d -q | tar -C ${remoteDir} -xf -`,
  ];
  const env = { ...process.env, SSH_AUTH_SOCK: '' };
  const t0 = performance.now();
  const tar = spawn('tar', ['-C', dir, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const zstd = spawn('zstd', ['-1', '-q', '-c'], { stdio: [tar.stdout, 'pipe', 'pipe'], env });
  const ssh2 = spawn('ssh', ssh, { stdio: [zstd.stdout, 'ignore', 'pipe'], env });
  const done = (c: ChildProcess, what: string) =>
    new Promise<string | undefined>((resolve) => {
      let err = '';
      c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      c.once('error', (e) => resolve(`${what}: ${e.message}`));
      c.once('exit', (code, sig) => resolve(code === 0 ? undefined : `${what} exited ${code ?? sig}: ${err.trim().slice(-500)}`));
    });
  const problems = (await Promise.all([done(tar, 'tar'), done(zstd, 'zstd'), done(ssh2, 'ssh')])).filter(Boolean);
  const elapsed = performance.now() - t0;
  if (problems.length) throw new Error(`naive transfer failed: ${problems.join('; ')}`);
  return { ms: elapsed };
}
