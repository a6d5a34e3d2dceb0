/**
 * A container holding file locks, moved over real SSH with real CRIU: on the
 * peer the moved processes still hold them (another process of the container
 * cannot take them, the peer's /proc/locks lists them for the moved
 * processes), the report says what was carried. A lock CRIU cannot carry (one
 * held from outside the container on a file it has open) is refused before
 * the freeze.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot, CLI } from '../../helpers/cli.js';
import { importLocker, lockerRootfs } from '../../helpers/locker.js';
import { Rig, addRigPeer } from '../../helpers/rig.js';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cgroupParentFor } from '../../../src/runtime/context.js';

const A = tempRoot('tsm-locksA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });
const loop = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done';

before(async () => {
  B = await addRigPeer(rig, 'tsm-peer-l', '127.0.0.6', A, TA);
  await importLocker(A);
});
after(async () => {
  for (const n of ['lk', 'lease', 'outside']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll('tsm-peer-l');
  rmSync(A, { recursive: true, force: true });
});

const count = async (root: string, name: string) => Number((await cliOk(root, ['exec', name, '--', 'cat', '/tmp/count'])).trim());

/** `locker try KIND FILE` in the container: 0 taken, 1 refused (someone holds it). */
async function tryLock(root: string, name: string, kind: string, file: string): Promise<number> {
  return (await cli(root, ['exec', name, '--', 'locker', 'try', kind, file])).code;
}

/** The peer's (this machine's) /proc/locks lines for the inode of `file` in the container, with the command of the process each names. */
async function hostLocks(root: string, name: string, file: string): Promise<Array<{ kind: string; pid: number; cmd: string; cgroup: string }>> {
  const ino = (await cliOk(root, ['exec', name, '--', 'stat', '-c', '%i', file])).trim();
  return readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => new RegExp(`:${ino} `).test(l)).map((l) => {
    const f = l.trim().split(/\s+/);
    const pid = Number(f[4]);
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { kind: f[1]!, pid, cmd, cgroup: readFileSync(`/proc/${pid}/cgroup`, 'utf8') };
  });
}

test('a container holding an flock and a POSIX lock is moved: the moved processes hold them on the peer, the report says so', async () => {
  await TA(['run', '-d', 'lk', '--image', 'locker', '--', 'sh', '-c', `locker hold flock /tmp/a & locker hold posix /tmp/b & ${loop}`]);
  await eventually(async () => (await cliOk(A, ['logs', 'lk'])).split('held').length === 3, 15000);
  assert.equal(await tryLock(A, 'lk', 'flock', '/tmp/a'), 1, 'held on A');
  assert.equal(await tryLock(A, 'lk', 'posix', '/tmp/b'), 1, 'held on A');
  const r = spawnSync(process.execPath, [CLI, '--root', A, '--config', CFG, '--json', 'move', 'lk', 'tsm-peer-l'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 180000 });
  assert.equal(r.status, 0, r.stderr);
  const done = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; report?: { carried: unknown } }).find((e) => e.event === 'done');
  assert.deepEqual(done?.report?.carried, { tcpEstablished: true, fileLocks: true, locks: { flock: 1, posix: 1, ofd: 0, lease: 0 } });
  // on the peer: the process runs on, another process of the container cannot take either lock
  const c = await count(B, 'lk');
  await eventually(async () => (await count(B, 'lk')) > c + 2, 10000);
  assert.equal(await tryLock(B, 'lk', 'flock', '/tmp/a'), 1, 'the flock is held on the peer');
  assert.equal(await tryLock(B, 'lk', 'posix', '/tmp/b'), 1, 'the POSIX lock is held on the peer');
  // ... by the moved lockers, in the peer's container (the source copy is gone)
  const cgroup = `${cgroupParentFor(path.resolve(B))}/lk`;
  for (const [file, kind, holder] of [['/tmp/a', 'FLOCK', 'locker hold flock /tmp/a'], ['/tmp/b', 'POSIX', 'locker hold posix /tmp/b']] as const) {
    const held = await hostLocks(B, 'lk', file);
    assert.equal(held.length, 1, JSON.stringify(held));
    assert.equal(held[0]!.kind, kind);
    assert.equal(held[0]!.cmd, holder);
    assert.ok(held[0]!.cgroup.includes(cgroup), `held by a process of B's container (${held[0]!.cgroup})`);
  }
  await TB(['rm', '-f', 'lk']);
});

function moveJson(name: string): { status: number | null; stderr: string; report?: { carried: unknown } } {
  const r = spawnSync(process.execPath, [CLI, '--root', A, '--config', CFG, '--json', 'move', name, 'tsm-peer-l'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 180000 });
  const done = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; report?: { carried: unknown } }).find((e) => e.event === 'done');
  return { status: r.status, stderr: r.stderr, ...(done?.report ? { report: done.report } : {}) };
}

test('leases and OFD locks are carried too (CRIU 4.2 restores them): held on the peer by the moved processes', async () => {
  await TA(['run', '-d', 'lease', '--image', 'locker', '--', 'sh', '-c', `echo x > /tmp/l; locker hold lease /tmp/l & locker hold ofd /tmp/o & ${loop}`]);
  await eventually(async () => (await cliOk(A, ['logs', 'lease'])).split('held').length === 3, 15000);
  const r = moveJson('lease');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.report?.carried, { tcpEstablished: true, fileLocks: true, locks: { flock: 0, posix: 0, ofd: 1, lease: 1 } });
  assert.equal(await tryLock(B, 'lease', 'ofd', '/tmp/o'), 1, 'the OFD lock is held on the peer');
  // opening the file for writing breaks a read lease: refused without waiting while one is held
  assert.equal((await cli(B, ['exec', 'lease', '--', 'locker', 'break', '/tmp/l'])).code, 0, 'the lease is held on the peer');
  const held = await hostLocks(B, 'lease', '/tmp/l');
  assert.deepEqual(held.map((h) => [h.kind, h.cmd]), [['LEASE', 'locker hold lease /tmp/l']]);
  await TB(['rm', '-f', 'lease']);
});

test('a lock held from outside the container on a file it has open is refused before the freeze, with the reason; nothing on the peer', async () => {
  await TA(['run', '-d', 'outside', '--image', 'locker', '--', 'sh', '-c', `echo x > /tmp/shared; exec 3</tmp/shared; ${loop}`]);
  await eventually(async () => (await count(A, 'outside').catch(() => 0)) > 2, 15000);
  // a host process locks the container's file through its rootfs
  const merged = path.join(A, 'containers', 'outside', 'rootfs', 'merged');
  const holder = spawn(path.join(lockerRootfs(), 'bin/locker'), ['hold', 'flock', path.join(merged, 'tmp/shared')], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    const before = await count(A, 'outside');
    const r = moveJson('outside');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, new RegExp(`a move cannot carry the file locks of "outside": /tmp/shared is locked \\(FLOCK WRITE\\) by process ${holder.pid} outside the container, which the move cannot take along; release those locks`));
    const dir = path.join(A, 'migrations/outgoing');
    assert.doesNotMatch(readFileSync(path.join(dir, readdirSync(dir).sort().pop()!), 'utf8'), /"frozen"/, 'never frozen');
    // the counter went on all along, on A only
    assert.ok((await count(A, 'outside')) > before);
    assert.equal(existsSync(path.join(B, 'containers', 'outside')), false, 'nothing on the peer');
    const inc = path.join(B, 'migrations/incoming');
    for (const f of existsSync(inc) ? readdirSync(inc) : []) assert.doesNotMatch(readFileSync(path.join(inc, f), 'utf8'), /"outside"/, 'the peer never began it');
  } finally {
    holder.kill('SIGKILL');
  }
  // released: the move goes
  const again = moveJson('outside');
  assert.equal(again.status, 0, again.stderr);
  await TB(['rm', '-f', 'outside']);
});
