/**
 * CRIU failures people hit, reproduced with plain processes against the real
 * CRIU, end to end through runCriu: each must come back as a CriuError with
 * the right reason and a one-line message naming the cause and the fix.
 * Needs root (as CRIU does). Every process started here is killed in finally.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { locateCriu } from '../../../src/criu/binary.js';
import { dumpArgv, restoreArgv } from '../../../src/criu/argv.js';
import { runCriu } from '../../../src/criu/run.js';
import { criuCpuinfoCheck, criuCpuinfoDump } from '../../../src/criu/cpuinfo.js';
import { isCriuError, type CriuError, type CriuFailureReason } from '../../../src/criu/errors.js';
import { isTsmError } from '../../../src/errors/errors.js';

const TIMEOUT_MS = 60_000;

function tempDir(tag: string): string {
  return mkdtempSync(path.join(tmpdir(), `tsm-criu-fail-${tag}-`));
}

/** A shell command as a new session leader (CRIU wants the tree to lead its session). */
function startSession(script: string, shell = 'sh'): ChildProcess {
  const child = spawn(shell, ['-c', script], { detached: true, stdio: 'ignore' });
  assert.ok(child.pid !== undefined, 'spawned');
  return child;
}

/** Wait until /proc/PID/exe is the program (the sh has exec'd into it). */
async function waitExec(pid: number, name: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      /* not there yet / gone */
    }
    if (comm === name) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} did not become ${name} (is ${comm || 'gone'})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** SIGKILL and wait until reaped (its PID must be free again for a restore). */
async function killChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.pid === undefined) return;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(child.pid, 'SIGKILL');
  } catch {
    return;
  }
  await exited;
}

function killPid(pid: number | undefined): void {
  if (pid === undefined || pid <= 1) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

function pidFrom(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

async function expectCriuError(p: Promise<unknown>, reason: CriuFailureReason, cause: RegExp, fix: RegExp): Promise<CriuError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(isCriuError(err), `expected a CriuError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  const e = err as CriuError;
  const line = e.oneLine();
  assert.equal(e.reason, reason, `${line}\n${e.excerpt.join('\n')}`);
  assert.equal(e.code, 'ECRIU');
  assert.ok(!/[\r\n]/.test(e.message) && !/[\r\n]/.test(e.fix ?? ''), `one line: ${line}`);
  assert.match(e.message, cause);
  assert.match(e.fix ?? '', fix);
  assert.ok(e.logPath !== undefined && existsSync(e.logPath), `log kept: ${String(e.logPath)}`);
  assert.ok(line.includes(e.logPath), 'the one-line error says where the log is');
  assert.ok(!line.includes('RLIMIT_NOFILE') && e.excerpt.every((l) => !l.includes('RLIMIT_NOFILE')));
  console.log(`${reason}: ${line}`);
  return e;
}

test('a dump of a process with an established TCP connection, without --tcp-established', async () => {
  const criu = await locateCriu(process.env);
  const dir = tempDir('tcp');
  const server = net.createServer((s) => s.on('error', () => undefined));
  let child: ChildProcess | undefined;
  try {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const accepted = new Promise<void>((r) => server.once('connection', () => r()));
    // the peer (this test process) is outside the dumped tree: only the client is dumped
    child = startSession(`exec 3<>/dev/tcp/127.0.0.1/${port}; exec sleep 120`, 'bash');
    const c = child;
    await Promise.race([
      accepted,
      new Promise((_, reject) => c.once('exit', (code) => reject(new Error(`the bash client exited (${String(code)}) before connecting`)))),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no connection within 10 s')), 10_000).unref()),
    ]);
    await waitExec(child.pid!, 'sleep');
    const argv = dumpArgv({ pid: child.pid!, imagesDir: dir, leaveRunning: true });
    await expectCriuError(
      runCriu(criu, argv, { imagesDir: dir, logFile: 'dump.log', timeoutMs: TIMEOUT_MS }),
      'tcp-established',
      /established TCP connection/,
      /--tcp-established/,
    );
    assert.ok(alive(child.pid!), 'a dump CRIU refuses leaves the process running');
  } finally {
    await killChild(child);
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a dump of a process holding a device open', async () => {
  const criu = await locateCriu(process.env);
  // character devices CRIU cannot dump (/dev/null, /dev/kmsg, ttys of ours... it can)
  const device = ['/dev/loop-control', '/dev/fuse', '/dev/tty0', '/dev/net/tun'].find((d) => existsSync(d));
  assert.ok(device, 'one of /dev/loop-control, /dev/fuse, /dev/tty0, /dev/net/tun exists');
  const dir = tempDir('dev');
  let child: ChildProcess | undefined;
  try {
    child = startSession(`exec 3<>${device}; exec sleep 120`);
    await waitExec(child.pid!, 'sleep');
    const argv = dumpArgv({ pid: child.pid!, imagesDir: dir, leaveRunning: true });
    await expectCriuError(
      runCriu(criu, argv, { imagesDir: dir, logFile: 'dump.log', timeoutMs: TIMEOUT_MS }),
      'device',
      device === '/dev/net/tun' ? /\/dev\/net\/tun/ : new RegExp(`process ${child.pid} holds a character device \\d+:\\d+ open \\(fd 3\\)`),
      /close (the device|\/dev\/net\/tun)/,
    );
    assert.ok(alive(child.pid!), 'a dump CRIU refuses leaves the process running');
  } finally {
    await killChild(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a restore after a file the process held open grew', async () => {
  const criu = await locateCriu(process.env);
  const dir = tempDir('size');
  const images = path.join(dir, 'images');
  const held = path.join(dir, 'held.txt');
  const pidfile = path.join(dir, 'restored.pid');
  let child: ChildProcess | undefined;
  try {
    writeFileSync(held, 'hello\n');
    mkdirSync(images);
    child = startSession(`exec 3<${held}; exec sleep 120`);
    await waitExec(child.pid!, 'sleep');
    const dump = await runCriu(criu, dumpArgv({ pid: child.pid!, imagesDir: images, leaveRunning: true }), { imagesDir: images, logFile: 'dump.log', timeoutMs: TIMEOUT_MS });
    assert.ok(dump.durationMs > 0);
    assert.ok(readdirSync(images).some((f) => f.startsWith('pages-')), 'dumped');
    await killChild(child);
    appendFileSync(held, 'more\n');
    const argv = restoreArgv({ imagesDir: images, root: '/', pidfile, detached: true, sibling: false });
    await expectCriuError(
      runCriu(criu, argv, { imagesDir: images, logFile: 'restore.log', timeoutMs: TIMEOUT_MS }),
      'file-changed',
      new RegExp(`${held.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, which the container held open, was changed.*size now 11, 6 at the checkpoint`),
      /inside its rootfs/,
    );
  } finally {
    await killChild(child);
    killPid(pidFrom(pidfile));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restoring the same images twice: the PID is taken', async () => {
  const criu = await locateCriu(process.env);
  const dir = tempDir('pid');
  let child: ChildProcess | undefined;
  const pid1 = path.join(dir, 'first.pid');
  const pid2 = path.join(dir, 'second.pid');
  try {
    child = startSession('exec sleep 120');
    await waitExec(child.pid!, 'sleep');
    await runCriu(criu, dumpArgv({ pid: child.pid!, imagesDir: dir, leaveRunning: false }), { imagesDir: dir, logFile: 'dump.log', timeoutMs: TIMEOUT_MS });
    await killChild(child); // already gone (dumped without leave-running): just reap it
    // runCriu finds the log from the command line
    await runCriu(criu, restoreArgv({ imagesDir: dir, logFile: 'restore1.log', root: '/', pidfile: pid1, detached: true, sibling: false }), { timeoutMs: TIMEOUT_MS });
    assert.equal(pidFrom(pid1), child.pid, 'restored with its PID');
    await expectCriuError(
      runCriu(criu, restoreArgv({ imagesDir: dir, logFile: 'restore2.log', root: '/', pidfile: pid2, detached: true, sibling: false }), {
        imagesDir: dir,
        logFile: 'restore2.log',
        timeoutMs: TIMEOUT_MS,
      }),
      'pid-in-use',
      new RegExp(`PID ${child.pid} is already taken`),
      /stop the copy that is already running/,
    );
    assert.ok(alive(child.pid!), 'the first copy still runs');
  } finally {
    await killChild(child);
    killPid(pidFrom(pid1));
    killPid(pidFrom(pid2));
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Protobuf varint at i: [value, next index]. */
function varint(b: Buffer, i: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    const x = b[i++];
    if (x === undefined) throw new Error('truncated varint');
    v += (x & 0x7f) * mul;
    mul *= 128;
    if ((x & 0x80) === 0) return [v, i];
  }
}

/**
 * cpuinfo.img is 2 magics, a 4-byte length and a CpuinfoEntry whose field 1
 * is a CpuinfoX86Entry; set every bit its xfeatures_mask (field 8, varint)
 * can hold in the same number of bytes, in place.
 */
function widenXfeatures(img: Buffer): void {
  let i = 12;
  assert.equal(img[i], 0x0a, 'x86 entry');
  let len: number;
  [len, i] = varint(img, i + 1);
  const end = i + len;
  while (i < end) {
    let key: number;
    [key, i] = varint(img, i);
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) {
      const start = i;
      [, i] = varint(img, i);
      if (field === 8) {
        for (let j = start; j < i - 1; j++) img[j] = 0xff;
        img[i - 1] = 0x7f;
        return;
      }
    } else if (wire === 2) {
      let n: number;
      [n, i] = varint(img, i);
      i += n;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  throw new Error('no xfeatures_mask in cpuinfo.img');
}

test('runCriu refuses a log file the command line does not use', async () => {
  const criu = await locateCriu(process.env);
  const argv = restoreArgv({ imagesDir: '/nonexistent/images', root: '/', pidfile: '/nonexistent/p.pid', detached: true, sibling: false });
  await assert.rejects(runCriu(criu, argv, { imagesDir: '/nonexistent/images', logFile: 'other.log' }), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  await assert.rejects(runCriu(criu, argv, { imagesDir: '/elsewhere' }), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
});

test('runCriu: a binary that cannot run is ECRIU_MISSING; a timeout is reason interrupted', async () => {
  await assert.rejects(runCriu('/nonexistent/criu', ['check'], {}), (e: unknown) => isTsmError(e, 'ECRIU_MISSING') && !e.message.includes('\n'));
  const dir = tempDir('slow');
  try {
    // a stand-in that never finishes: CRIU's contract (argv, log file) without CRIU
    const slow = path.join(dir, 'criu');
    writeFileSync(slow, '#!/bin/sh\necho "(00.000001) Warn  (criu/x.c:1): started" > "$3/dump.log"\nexec sleep 30\n', { mode: 0o755 });
    const t0 = Date.now();
    await assert.rejects(runCriu(slow, ['dump', '--images-dir', dir, '--log-file', 'dump.log'], { timeoutMs: 300 }), (e: unknown) => {
      assert.ok(isCriuError(e, 'interrupted'), String(e));
      // one line, with what CRIU logged last quoted
      assert.match(e.message, /^criu dump failed: did not finish within 300 ms and was stopped; CRIU logged: "Warn \(criu\/x\.c:1\): started"$/);
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    await assert.rejects(runCriu(slow, ['dump', '--images-dir', dir, '--log-file', 'dump.log'], { signal: ac.signal }), (e: unknown) => isCriuError(e, 'interrupted') && /cancelled/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cpuinfo dump and check, and a check against a CPU with more features', async () => {
  const criu = await locateCriu(process.env);
  const dir = tempDir('cpu');
  try {
    assert.deepEqual(await criuCpuinfoCheck(criu, dir), { ok: false, detail: `no cpuinfo.img in ${dir} (the checkpoint did not record its CPU)` });
    await criuCpuinfoDump(criu, dir);
    assert.deepEqual(readdirSync(dir), ['cpuinfo.img'], 'nothing but the image (CRIU logs to stderr)');
    const good = await criuCpuinfoCheck(criu, dir);
    assert.equal(good.ok, true, good.detail);
    // claim every xsave feature: this CPU cannot have them all (x86 only)
    if (process.arch === 'x64') {
      const other = path.join(dir, 'other');
      mkdirSync(other);
      copyFileSync(path.join(dir, 'cpuinfo.img'), path.join(other, 'cpuinfo.img'));
      const img = readFileSync(path.join(other, 'cpuinfo.img'));
      widenXfeatures(img);
      writeFileSync(path.join(other, 'cpuinfo.img'), img);
      const bad = await criuCpuinfoCheck(criu, other);
      assert.equal(bad.ok, false);
      assert.match(bad.detail, /^cpu: /);
      assert.ok(!bad.detail.includes('\n'));
      console.log(`cpuinfo check against a wider CPU: ${bad.detail}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
