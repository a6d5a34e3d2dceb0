/**
 * --userns auto: root in the container is an unprivileged range of host ids.
 * Checked from the host (the processes' and the files' owners), through a
 * checkpoint and restore, and through a move over real SSH with a TCP client
 * connected from the host the whole time.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { CLI, cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { SHELL_SESSION, SHELL_SIZE, atTerminal } from '../../helpers/terminal.js';
import { debianRootfs } from '../../helpers/images.js';
import { addRigPeer, Rig } from '../../helpers/rig.js';
import { COUNTER_SERVER, connectCounter } from '../../helpers/tcp-counter.js';
import { assertLocalRoute } from '../../../src/network/guard.js';

const A = tempRoot('tsm-uns-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env: { SSH_AUTH_SOCK: '' }, timeoutMs: 180000 });

interface Inspect { pid: number; config: { userns?: { start: number; size: number } }; rootfs: { upper: string } }
const inspect = async (root: string, name: string) => JSON.parse(await cliOk(root, ['inspect', name])) as Inspect;
const hostUid = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

before(async () => {
  B = await addRigPeer(rig, 'tsm-peer-uns', '127.0.0.6', A, TA);
  await cliOk(A, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 300000 });
});

after(async () => {
  for (const n of ['u1', 'u2', 'utcp', 'umv', 'ublk', 'udr', 'uit']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll('tsm-peer-uns');
  rmSync(A, { recursive: true, force: true });
});

test('each --userns auto container is root inside and an unprivileged range outside, ranges never overlap', async () => {
  await cliOk(A, ['run', '-d', 'u1', '--userns', 'auto', '--image', 'debian', '--', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done']);
  await cliOk(A, ['run', '-d', 'u2', '--userns', 'auto', '--image', 'debian', '--', 'sleep', '100000']);
  const [i1, i2] = [await inspect(A, 'u1'), await inspect(A, 'u2')];
  const [r1, r2] = [i1.config.userns!, i2.config.userns!];
  assert.ok(r1.start > 0 && r2.start > 0 && (r1.start + r1.size <= r2.start || r2.start + r2.size <= r1.start), `ranges ${JSON.stringify([r1, r2])} overlap`);
  assert.equal(hostUid(i1.pid), r1.start, 'the init runs as the range\'s first id on the host');
  assert.equal((await cliOk(A, ['exec', 'u1', '--', 'id', '-u'])).trim(), '0', 'root inside');
  assert.match(await cliOk(A, ['exec', 'u1', '--', 'cat', '/proc/self/uid_map']), new RegExp(`^\\s*0\\s+${r1.start}\\s+${r1.size}\\s*$`));
  // the image's root-owned files are the container's root's; what it writes belongs to its range on the host
  assert.equal((await cliOk(A, ['exec', 'u1', '--', 'stat', '-c', '%u', '/etc/passwd'])).trim(), '0');
  await cliOk(A, ['exec', 'u1', '--', 'sh', '-c', 'echo state > /root/made-here']);
  assert.equal(statSync(path.join(i1.rootfs.upper, 'root/made-here')).uid, r1.start);
  // what host root owns is nobody's inside (its device nodes are the host's, bound in)
  assert.equal((await cliOk(A, ['exec', 'u1', '--', 'stat', '-c', '%u:%g', '/dev/null'])).trim(), '65534:65534');
  await cliOk(A, ['rm', '-f', 'u2']);
});

test('a --userns auto container survives a checkpoint and restore with its range and its memory', async () => {
  await eventually(async () => Number((await cliOk(A, ['exec', 'u1', '--', 'cat', '/tmp/n'])).trim()) > 3);
  const before = (await inspect(A, 'u1')).config.userns!;
  const id = (await cliOk(A, ['checkpoint', 'u1', '--stop'])).trim().split(/\s/)[0]!;
  await cliOk(A, ['restore', id], { timeoutMs: 120000 });
  const i = await inspect(A, 'u1');
  assert.deepEqual(i.config.userns, before);
  assert.equal(hostUid(i.pid), before.start);
  const n = Number((await cliOk(A, ['exec', 'u1', '--', 'cat', '/tmp/n'])).trim());
  assert.ok(n > 3, 'the counter kept its value');
  await eventually(async () => Number((await cliOk(A, ['exec', 'u1', '--', 'cat', '/tmp/n'])).trim()) > n + 2, 10000);
  assert.equal((await cliOk(A, ['exec', 'u1', '--', 'cat', '/root/made-here'])).trim(), 'state');
  await cliOk(A, ['rm', '-f', 'u1']);
});

test('a --userns auto container with a TCP connection from the host moves and keeps it', async () => {
  await TA(['run', '-d', 'utcp', '--userns', 'auto', '--image', 'debian', '--net', 'bridge', '--', 'python3', '-u', '-c', COUNTER_SERVER]);
  const src = await inspect(A, 'utcp');
  const ip = (JSON.parse(await TA(['--json', 'ps'])) as Array<{ name: string; ip: string }>).find((r) => r.name === 'utcp')!.ip;
  await assertLocalRoute(ip, 'tsm0');
  const client = await connectCounter(ip);
  const { lines } = client;
  try {
    await eventually(async () => lines.length > 10);
    await TA(['move', 'utcp', 'tsm-peer-uns']);
    const before = lines.length;
    // a long downtime on a loaded machine backs the client's retransmissions off: give it time
    await eventually(async () => lines.length > before + 10, 90000);
    assert.equal(client.closed(), false, 'the connection was not closed');
    for (let i = 1; i < lines.length; i++) assert.equal(lines[i], lines[i - 1]! + 1, 'no gap and no repeat in the stream');
    const dst = await inspect(B, 'utcp');
    assert.deepEqual(dst.config.userns, src.config.userns, 'the peer reserved the same range');
    assert.equal(hostUid(dst.pid), src.config.userns!.start, 'root inside is the range\'s first id on the peer');
    assert.equal((await cliOk(B, ['exec', 'utcp', '--', 'id', '-u'])).trim(), '0');
  } finally {
    client.stop();
  }
  await cliOk(B, ['rm', '-f', 'utcp']);
});

test('a move is refused before the freeze when the peer holds the container\'s range', async () => {
  await cliOk(B, ['run', '-d', 'ublk', '--userns', 'auto', '--image', 'debian', '--', 'sleep', '100000'], { timeoutMs: 120000 }).catch(async () => {
    // the peer may not have the image yet: bring it over the way an operator would
    await cliOk(B, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 300000 });
    await cliOk(B, ['run', '-d', 'ublk', '--userns', 'auto', '--image', 'debian', '--', 'sleep', '100000']);
  });
  await cliOk(A, ['run', '-d', 'umv', '--userns', 'auto', '--image', 'debian', '--', 'sleep', '100000']);
  const [held, mine] = [(await inspect(B, 'ublk')).config.userns!, (await inspect(A, 'umv')).config.userns!];
  assert.deepEqual(held, mine, 'both hosts handed out the first range of the same pool');
  const r = await cli(A, ['--config', CFG, 'move', 'umv', 'tsm-peer-uns'], { env: { SSH_AUTH_SOCK: '' }, timeoutMs: 180000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /container ublk holds ids/);
  const ps = JSON.parse(await cliOk(A, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((c) => c.name === 'umv')?.state, 'running', 'still running, never frozen, on the source');
  assert.equal((JSON.parse(await cliOk(B, ['--json', 'ps'])) as Array<{ name: string }>).some((c) => c.name === 'umv'), false);
  await cliOk(A, ['rm', '-f', 'umv']);
  await cliOk(B, ['rm', '-f', 'ublk']);
});

test('a disaster-recovery restore from a store brings a --userns auto container back in its range', async () => {
  await cliOk(A, ['run', '-d', 'udr', '--userns', 'auto', '--image', 'debian', '--', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done']);
  const range = (await inspect(A, 'udr')).config.userns!;
  await eventually(async () => Number((await cliOk(A, ['exec', 'udr', '--', 'cat', '/tmp/n'])).trim()) > 3);
  await cliOk(A, ['checkpoint', 'udr', '--store', 'local']);
  await cliOk(A, ['rm', '-f', 'udr']);
  await cliOk(A, ['restore', 'udr', '--latest'], { timeoutMs: 120000 });
  const i = await inspect(A, 'udr');
  assert.deepEqual(i.config.userns, range);
  assert.equal(hostUid(i.pid), range.start);
  assert.ok(Number((await cliOk(A, ['exec', 'udr', '--', 'cat', '/tmp/n'])).trim()) > 3, 'the counter kept its value');
  await cliOk(A, ['rm', '-f', 'udr']);
});

test('exec -it into a --userns auto container: an interactive shell on its own pty, as the namespace\'s root', async () => {
  await cliOk(A, ['run', '-d', 'uit', '--userns', 'auto', '--image', 'debian', '--', 'sleep', '100000']);
  try {
    const s = await atTerminal(SHELL_SESSION, [process.execPath, CLI, '--root', A, 'exec', '-it', 'uit', '--', 'sh'], SHELL_SIZE);
    assert.ok(s.ok, `step ${JSON.stringify(s.failed)} failed; the terminal showed:\n${s.transcript}`);
    assert.equal(s.exit, 7);
    const id = await atTerminal([], [process.execPath, CLI, '--root', A, 'exec', '-t', 'uit', '--', 'id', '-u']);
    assert.match(id.transcript, /^0\r\n/);
  } finally {
    await cliOk(A, ['rm', '-f', 'uit']);
  }
});
