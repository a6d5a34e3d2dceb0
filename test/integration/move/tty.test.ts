/** Moving a container run with -t: its pty is external to the images; the peer's supervisor makes a new one. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { moveContainer } from '../../../src/move/move.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { peerConfigOf, trustRoot } from '../../helpers/trust.js';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { inProcessPeer } from '../../helpers/inprocess-peer.js';

const A = tempRoot('tsm-hostA-');
const B = tempRoot('tsm-hostB-');
const env = { ...process.env, TSMIGRATE_IPAM_DIR: `${A}/ipam` };
const T = (root: string, args: string[]) => cliOk(root, args, { env, timeoutMs: 120000 });
const ticker = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i on $(tty)"; sleep 0.1; done'];

before(async () => importBusybox(A));
after(async () => {
  for (const r of [A, B]) await cli(r, ['rm', '-f', 'tmv'], { env });
  rmSync(A, { recursive: true, force: true });
  rmSync(B, { recursive: true, force: true });
});

const lastTick = (root: string) => {
  const m = [...readFileSync(path.join(root, 'containers/tmv/container.log'), 'utf8').matchAll(/tick (\d+) on (\S+)/g)].pop();
  return m ? { n: Number(m[1]), tty: m[2] } : undefined;
};
const stdio = (root: string) => (JSON.parse(readFileSync(path.join(root, 'containers/tmv/state.json'), 'utf8')) as { stdio?: { stdout: string } }).stdio?.stdout;

test('move A -> B of a run -dt container: it writes on to a pty whose master the peer supervisor holds and logs', async () => {
  await T(A, ['run', '-dt', 'tmv', '--image', 'busybox', '--', ...ticker]);
  await eventually(async () => (lastTick(A)?.n ?? 0) > 5);
  assert.equal(lastTick(A)?.tty, '/dev/pts/0', "on A: a pty of the container's devpts");
  assert.match(stdio(A) ?? '', /^tty\[/);
  await trustRoot(peerConfigOf(B), A);
  await moveContainer(createRuntime({ root: A, env }), { name: 'tmv', host: 'B', compress: 'auto' }, inProcessPeer(B, env).connect);
  const moved = JSON.parse(await T(B, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(moved.find((r) => r.name === 'tmv')?.state, 'running');
  assert.match(stdio(B) ?? '', /^tty\[[0-9a-f]+:[0-9a-f]+\]$/, 'the peer recorded its pty');
  const first = await eventually(async () => lastTick(B));
  await eventually(async () => (lastTick(B)?.n ?? 0) > first.n + 3);
  assert.ok(first.n > 5, `the count went on from where it was on A (${first.n})`);
  await T(B, ['stop', '-t', '1', 'tmv']);
});
