/**
 * The whole move against real CRIU, cgroups, namespaces and overlayfs, with the
 * peer's agent called in-process (two state roots on this machine). The SSH
 * transport is tested in ssh-move.test.ts; here the faults are injected by
 * wrapping the peer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { AgentApi } from '../../../src/agent/api.js';
import { moveContainer, type MoveEvent, type PeerConnection } from '../../../src/move/move.js';
import { readHistory } from '../../../src/move/history.js';
import { recoverMoves } from '../../../src/move/recover.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { cli, cliOk, eventually, sleep, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { inProcessPeer } from '../../helpers/inprocess-peer.js';
import { peerConfigOf, trustRoot } from '../../helpers/trust.js';
import { leftovers } from '../../helpers/leftovers.js';

const A = tempRoot('tsm-hostA-');
const B = tempRoot('tsm-hostB-');
const env = { ...process.env, TSMIGRATE_BRIDGE: 'tsmt4', TSMIGRATE_SUBNET: '10.218.0.0/24', TSMIGRATE_IPAM_DIR: `${A}/ipam` };
const rtA = createRuntime({ root: A, env });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo tick $i; sleep 0.1; done'];
const T = (root: string, args: string[]) => cliOk(root, args, { env, timeoutMs: 120000 });

before(async () => {
  await importBusybox(A);
  // the two hosts trust each other's signing keys
  await trustRoot(peerConfigOf(B), A);
  await trustRoot(peerConfigOf(A), B);
});
after(async () => {
  for (const r of [A, B]) for (const n of ['mv', 'busy', 'flt', 'rec', 'big']) await cli(r, ['rm', '-f', n], { env });
  try {
    execFileSync('ip', ['link', 'del', 'tsmt4']);
  } catch {
    /* gone */
  }
  rmSync(A, { recursive: true, force: true });
  rmSync(B, { recursive: true, force: true });
});

async function count(root: string, name: string): Promise<number> {
  return Number((await T(root, ['exec', name, '--', 'cat', '/tmp/count'])).trim());
}
async function state(root: string, name: string): Promise<string | undefined> {
  const rows = JSON.parse(await T(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  return rows.find((r) => r.name === name)?.state;
}
/** exactly one running copy, on `where` */
async function assertOneCopy(name: string, where: string) {
  const other = where === A ? B : A;
  assert.equal(await state(where, name), 'running', `running on ${where === A ? 'A' : 'B'}`);
  assert.equal(await state(other, name), undefined, `no copy on ${other === A ? 'A' : 'B'}`);
  assert.deepEqual(leftovers(other, name).filter((l) => !l.startsWith('state')), []);
}
const peerOf = (root: string) => inProcessPeer(root, env);
const rtOf = (root: string) => (root === A ? rtA : createRuntime({ root, env }));

test('move A -> B -> A: the counter goes on from where it was, the IP stays, nothing is left behind', async () => {
  await T(A, ['run', '-d', 'mv', '--image', 'busybox', '--net', 'bridge', '--memory', '64m', '--', ...counter]);
  await eventually(async () => (await count(A, 'mv')) > 5);
  const ipBefore = (JSON.parse(await T(A, ['--json', 'ps'])) as Array<{ name: string; ip: string }>).find((r) => r.name === 'mv')?.ip;
  const events: string[] = [];
  const r1 = await moveContainer(rtA, { name: 'mv', host: 'B', compress: 'auto', onEvent: (e: MoveEvent) => events.push(e.phase) }, peerOf(B).connect);
  await assertOneCopy('mv', B);
  const c1 = await count(B, 'mv');
  assert.ok(c1 > 5, 'the count continued on B');
  assert.ok(r1.downtime.totalMs > 0 && r1.downtime.totalMs >= r1.downtime.dumpMs);
  assert.match(r1.preCopy, /soft-dirty|not/);
  assert.equal(r1.images.via, 'files', 'by default the images go to tmpfs and the peer restores as they arrive');
  assert.match(r1.images.note ?? '', /^auto: \d+ MiB of memory; files in tmpfs/);
  assert.equal(r1.restoreParts.duringTransfer, true, 'the peer restored during the transfer');
  for (const p of ['connect', 'preflight', 'upper', 'freeze', 'dump', 'transfer', 'restore', 'resume']) assert.ok(events.includes(p), `phase ${p} reported`);
  const ipB = (JSON.parse(await T(B, ['--json', 'ps'])) as Array<{ name: string; ip: string }>).find((r) => r.name === 'mv')?.ip;
  assert.equal(ipB, ipBefore, 'the container kept its IP');
  // and back
  await eventually(async () => (await count(B, 'mv')) > c1 + 3);
  // and back with the images from CRIU's image streamer (restored after the transfer: no manifest to start from), zstd on the wire
  const r2 = await moveContainer(rtOf(B), { name: 'mv', host: 'A', compress: 'on', warmMemory: false, criuStream: true }, peerOf(A).connect);
  assert.equal(r2.compression.used, true);
  assert.equal(r2.images.via, 'stream');
  assert.equal(r2.restoreParts.duringTransfer, false);
  assert.deepEqual([r2.warmMemory.sourceBytes, r2.warmMemory.peerBytes], [0, 0], 'warmMemory: false faults nothing in');
  assert.ok(r1.warmMemory.sourceBytes > 0, 'by default the memory is faulted in before the freeze');
  assert.equal(r2.epoch, 2, 'every move bumps the epoch');
  await assertOneCopy('mv', A);
  const c2 = await count(A, 'mv');
  assert.ok(c2 > c1, `monotonic: ${c2} > ${c1}`);
  assert.match(await T(A, ['logs', 'mv']), new RegExp(`tick ${c2 + 1}\\n`));
});

test('a container with 40 MB of heap: its largest image lands in the tmpfs file the peer allocated before the freeze, both image paths carry it whole, and a restore during the transfer reads it from there', async () => {
  const heap = ['sh', '-c', 'x=$(head -c 40000000 /dev/zero | tr "\\0" a); i=0; while true; do i=$((i+1)); echo "${#x} $i" > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'];
  await T(A, ['run', '-d', 'big', '--image', 'busybox', '--memory', '256m', '--', ...heap]);
  const len = async (root: string) => (await T(root, ['exec', 'big', '--', 'cat', '/tmp/count'])).trim().split(' ');
  await eventually(async () => (await len(A))[0] === '40000000');
  const r1 = await moveContainer(rtA, { name: 'big', host: 'B', compress: 'off', criuStream: true }, peerOf(B).connect);
  assert.ok(r1.warmMemory.peerPoolBytes >= 32 << 20, `the peer preallocated ${r1.warmMemory.peerPoolBytes} bytes for the images`);
  assert.equal(r1.images.via, 'stream');
  await assertOneCopy('big', B);
  const [l1, n1] = await len(B);
  assert.equal(l1, '40000000', 'the heap arrived whole');
  await eventually(async () => Number((await len(B))[1]) > Number(n1) + 2);
  const r2 = await moveContainer(rtOf(B), { name: 'big', host: 'A', compress: 'off' }, peerOf(A).connect);
  assert.equal(r2.images.via, 'files');
  assert.equal(r2.restoreParts.duringTransfer, true, 'restored as the 40 MB arrived, from the pool file');
  assert.ok(r2.warmMemory.peerPoolBytes >= 32 << 20);
  await assertOneCopy('big', A);
  assert.equal((await len(A))[0], '40000000');
  const staged = existsSync('/dev/shm/tsmigrate') ? readdirSync('/dev/shm/tsmigrate') : [];
  assert.deepEqual(staged.filter((n) => n.includes(r1.id) || n.includes(r2.id)), [], 'no staging (and no pool) left behind');
  await T(A, ['rm', '-f', 'big']);
});

/** A peer whose method `m` fails (as if the peer broke there). */
function faultyPeer(root: string, m: keyof AgentApi): () => Promise<PeerConnection> {
  const p = peerOf(root);
  return async () => {
    const agent = Object.create(p.agent) as AgentApi;
    (agent as unknown as Record<string, unknown>)[m] = async () => {
      throw new Error(`injected failure in ${m}`);
    };
    return { agent, close: async () => undefined };
  };
}

for (const m of ['putUpper', 'putLogs', 'putImages', 'prepare'] as const) {
  test(`a failure on the peer in ${m} leaves the container running on the source, unchanged; a retry succeeds`, async () => {
    await T(A, ['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
    await eventually(async () => (await count(A, 'flt')) > 3);
    await assert.rejects(moveContainer(rtA, { name: 'flt', host: 'B', compress: 'off' }, faultyPeer(B, m)), /injected failure/);
    await assertOneCopy('flt', A);
    const c = await count(A, 'flt');
    await eventually(async () => (await count(A, 'flt')) > c + 2);
    assert.deepEqual(readdirSync(path.join(B, 'containers')).filter((n) => n === 'flt'), []);
    await moveContainer(rtA, { name: 'flt', host: 'B', compress: 'off' }, peerOf(B).connect);
    await assertOneCopy('flt', B);
    await T(B, ['rm', '-f', 'flt']);
  });
}

test('a corrupted byte in the memory images is caught; the source keeps running', async () => {
  await T(A, ['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'flt')) > 3);
  await assert.rejects(moveContainer(rtA, { name: 'flt', host: 'B', compress: 'off', faults: { corruptImages: true } }, peerOf(B).connect), (e: Error & { code?: string }) => {
    assert.match(e.message, /corrupt|invalid|tar/i);
    return true;
  });
  await assertOneCopy('flt', A);
  await T(A, ['rm', '-f', 'flt']);
});

for (const phase of ['preflight', 'upper', 'freeze', 'dump', 'transfer', 'restore']) {
  test(`an interrupt (SIGINT) during ${phase} rolls back: one running copy on the source`, async () => {
    await T(A, ['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
    await eventually(async () => (await count(A, 'flt')) > 3);
    const ac = new AbortController();
    await assert.rejects(
      moveContainer(rtA, { name: 'flt', host: 'B', compress: 'off', signal: ac.signal, onEvent: (e) => e.phase === phase && ac.abort(new Error('interrupted')) }, peerOf(B).connect),
    );
    await assertOneCopy('flt', A);
    const c = await count(A, 'flt');
    await eventually(async () => (await count(A, 'flt')) > c + 2, 5000);
    await T(A, ['rm', '-f', 'flt']);
  });
}

test('two moves of one container at once: one wins, the other fails at once with busy and never freezes it', async () => {
  await T(A, ['run', '-d', 'busy', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'busy')) > 3);
  const results = await Promise.allSettled([
    moveContainer(rtA, { name: 'busy', host: 'B', compress: 'off' }, peerOf(B).connect),
    (async () => {
      await sleep(50);
      const t0 = Date.now();
      try {
        return await moveContainer(createRuntime({ root: A, env }), { name: 'busy', host: 'B', compress: 'off' }, peerOf(B).connect);
      } finally {
        assert.ok(Date.now() - t0 < 2000, 'the loser fails at once');
      }
    })(),
  ]);
  assert.equal(results[0].status, 'fulfilled');
  assert.equal(results[1].status, 'rejected');
  assert.match(String((results[1] as PromiseRejectedResult).reason.message), /busy/);
  await assertOneCopy('busy', B);
  await T(B, ['rm', '-f', 'busy']);
});

test('a move cut off after the decision is completed by recover; before it, rolled back', async () => {
  await T(A, ['run', '-d', 'rec', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, 'rec')) > 3);
  // the connection dies when the source sends commit, and does not come back
  let up = true;
  const p = peerOf(B);
  const flaky = async (): Promise<PeerConnection> => {
    if (!up) throw new Error('unreachable');
    const agent = Object.create(p.agent) as AgentApi;
    agent.commit = async () => {
      up = false;
      throw new Error('connection lost');
    };
    return { agent, close: async () => undefined };
  };
  await assert.rejects(moveContainer(rtA, { name: 'rec', host: 'B', compress: 'off' }, flaky), /decided but not finished/);
  assert.equal(await state(A, 'rec'), 'frozen', 'the source copy waits, frozen');
  const info = JSON.parse(await T(B, ['inspect', 'rec'])) as { status: string };
  assert.equal(info.status, 'creating', 'the peer holds its copy (restored, stopped, not yet resumed)');
  const actions = await recoverMoves(rtA, async () => ({ agent: p.agent, close: async () => undefined }));
  assert.deepEqual(actions.map((a) => [a.container, a.action]), [['rec', 'completed']]);
  // the history has the move as failed (why), then as finished by recover
  const h = (await readHistory(rtA.paths)).filter((e) => e.name === 'rec');
  assert.deepEqual(h.map((e) => [e.outcome, e.finished]), [['failed', undefined], ['recovered', 'committed']]);
  assert.match(h[0]!.reason ?? '', /connection lost/);
  assert.equal(h[0]!.id, h[1]!.id);
  await assertOneCopy('rec', B);
  const c = await count(B, 'rec');
  await eventually(async () => (await count(B, 'rec')) > c + 2);
  await T(B, ['rm', '-f', 'rec']);
});

test('a peer whose disk is too small refuses the move before anything is frozen', async () => {
  const small = path.join(B, 'small');
  mkdirSync(small, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
  try {
    await T(A, ['run', '-d', 'flt', '--image', 'busybox', '--', ...counter]);
    await assert.rejects(moveContainer(rtA, { name: 'flt', host: 'small', compress: 'off' }, inProcessPeer(small, env).connect), (e: Error) => {
      // the state root's tmpfs: 1 MiB (0 free once the root's directories are in), the upper layer, logs, image and margin over 64 MiB
      const m = new RegExp(`the peer's tmpfs at ${small} has (\\d+) MiB free, the move needs (\\d+) MiB there \\(upper layer`).exec(e.message);
      assert.ok(m && Number(m[1]) <= 1 && Number(m[2]) >= 64, e.message);
      return true;
    });
    await assertOneCopy('flt', A);
    const ev = readFileSync(path.join(A, 'migrations/outgoing', readdirSync(path.join(A, 'migrations/outgoing')).sort().pop()!), 'utf8');
    assert.doesNotMatch(ev, /"frozen"/, 'never frozen');
    assert.equal((await readHistory(rtA.paths)).filter((e) => e.name === 'flt').at(-1)?.outcome, 'refused');
  } finally {
    execFileSync('umount', ['-l', small]);
    await T(A, ['rm', '-f', 'flt']);
  }
});
