/**
 * The address lease of a --net bridge container through faulty moves over
 * real SSH (local hosts share this machine's lease directory): after the
 * peer's `criu restore` fails, SIGINT during the restore, a corrupted stream,
 * the peer agent killed while `criu restore` runs (with and without the
 * source's abort reaching it; both through CRIU's action script,
 * test/fixtures/criu-fault-action.sh), the source's lease is intact and owned by the source
 * container, none is left for the peer, a retry succeeds, and `recover`
 * repairs what a crash left.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { moveCli } from '../../helpers/move-cli.js';
import { Rig } from '../../helpers/rig.js';
import { addFaultPeer, criuFaultEnv, type FaultPeer } from '../../helpers/fault-peer.js';
import { defaultNetworkSettings } from '../../../src/network/setup.js';
import { listLeases, readLease } from '../../../src/network/ipam.js';

const A = tempRoot('tsm-lease-a-');
const CFG = path.join(A, 'config.yaml');
const PEER = 'tsm-lease-b';
const LEASES = defaultNetworkSettings().leaseDir;
const rig = new Rig();
let B = '';
let withAgentEnv: FaultPeer['withAgentEnv'];
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[], extra: NodeJS.ProcessEnv = {}) => cliOk(A, ['--config', CFG, ...args], { env: { ...env, ...extra }, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });
const move = (o: Parameters<typeof moveCli>[2] = {}) => moveCli(A, ['--config', CFG, '--json', 'move', 'lf', PEER], { ...o, env: { ...env, ...o.env } });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/count; sleep 0.1; done'];

before(async () => {
  const peer = await addFaultPeer(rig, PEER, '127.0.0.23', A, TA);
  B = peer.root;
  withAgentEnv = peer.withAgentEnv;
  await importBusybox(A);
});
after(async () => {
  await cli(A, ['rm', '-f', 'lf']);
  if (B) await cli(B, ['rm', '-f', 'lf']);
  rig.stopAll(PEER);
  rmSync(A, { recursive: true, force: true });
});

const count = async (root: string) => Number((await cliOk(root, ['exec', 'lf', '--', 'cat', '/tmp/count'])).trim());
const stateOf = async (root: string) => (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string; ip?: string }>).find((r) => r.name === 'lf');

async function runOnA(): Promise<string> {
  // what an earlier test that failed left
  await cli(A, ['rm', '-f', 'lf']);
  await cli(B, ['rm', '-f', 'lf']);
  await TA(['run', '-d', 'lf', '--image', 'busybox', '--net', 'bridge', '--', ...counter]);
  await eventually(async () => (await count(A)) > 3, 20000);
  return (await stateOf(A))!.ip!;
}

/** The lease of `ip` is owned by `root`'s container lf, lent to no one, and no other lease names the other root. */
async function assertLease(ip: string, root: string): Promise<void> {
  const other = root === A ? B : A;
  const l = await readLease(LEASES, ip);
  assert.deepEqual([l?.root, l?.container, l?.lentTo, l?.migration], [root, 'lf', undefined, undefined], `lease of ${ip}: ${JSON.stringify(l)}`);
  const stray = (await listLeases(LEASES)).filter((x) => x.root === other || x.lentTo?.root === other);
  assert.deepEqual(stray, [], `no lease left for ${other}`);
}

/** One running copy, on A, with its memory (the counter goes on), nothing of it on B. */
async function assertOnA(ip: string): Promise<void> {
  await eventually(async () => (await stateOf(B)) === undefined && leftovers(B, 'lf').length === 0, 30000);
  assert.equal((await stateOf(A))?.state, 'running');
  const inc = path.join(B, 'migrations/incoming');
  for (const f of existsSync(inc) ? readdirSync(inc) : []) {
    const m = JSON.parse(readFileSync(path.join(inc, f), 'utf8')) as { phase: string };
    assert.ok(['committed', 'aborted'].includes(m.phase), `peer migration ${f} is ${m.phase}`);
  }
  const c = await count(A);
  await eventually(async () => (await count(A)) > c + 2, 10000);
  await assertLease(ip, A);
}

/** A retry succeeds and takes the address along; removed on B, it leaves no lease behind. */
async function retryThenClean(ip: string): Promise<void> {
  const r = await move();
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await stateOf(B))?.ip, ip, 'the address went along');
  await assertLease(ip, B);
  await TB(['rm', '-f', 'lf']);
  assert.equal(await readLease(LEASES, ip), undefined, 'removed on B: the address is free');
}

test("the peer's restore failing: the source keeps its lease; a retry takes it along", async () => {
  const ip = await runOnA();
  // CRIU fails at its post-restore action: the tree, its veth and the address were made, then all is undone
  const r = await withAgentEnv(criuFaultEnv(A, 'post-restore', 'fail'), () => move());
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /restore/i);
  await assertOnA(ip);
  await retryThenClean(ip);
});

test('SIGINT during the restore (restoring while the images arrive, and after them): the source keeps its lease', async () => {
  const ip = await runOnA();
  for (const phase of ['transfer', 'restore']) {
    const r = await move({ onEvent: (e, child) => e.phase === phase && child.kill('SIGINT') });
    assert.notEqual(r.code, 0, `interrupted in ${phase}`);
    await assertOnA(ip);
  }
  await retryThenClean(ip);
});

test('a corrupted stream: the source keeps its lease', async () => {
  const ip = await runOnA();
  const r = await move({ fault: 'corrupt-images' });
  assert.notEqual(r.code, 0);
  await assertOnA(ip);
  await retryThenClean(ip);
});

test('the peer agent SIGKILLed during criu restore: the source keeps its lease, none is left on the peer, a retry is not refused', async () => {
  const ip = await runOnA();
  const r = await withAgentEnv(criuFaultEnv(A, 'post-restore', 'kill-agent'), () => move());
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error')).length, 1, r.stderr);
  await assertOnA(ip);
  await retryThenClean(ip);
});

test('the peer agent SIGKILLed during criu restore and the source CLI killed before its abort: recover on each side repairs the lease', async () => {
  const ip = await runOnA();
  const r = await withAgentEnv(criuFaultEnv(A, 'post-restore', 'kill-agent'), () => move({ onEvent: (e, child) => e.phase === 'rollback' && child.kill('SIGKILL') }));
  assert.equal(r.code, -1, 'the CLI was killed');
  // the move's freeze watchdog (guard-move) takes over from the killed CLI: its rollback, or
  // recover's, ends the source's journal; recover on each side repairs what is left
  const lastPhase = () => {
    const dir = path.join(A, 'migrations', 'outgoing');
    const newest = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort().pop()!;
    const lines = readFileSync(path.join(dir, newest), 'utf8').trim().split('\n');
    return (JSON.parse(lines[lines.length - 1]!) as { phase: string }).phase;
  };
  await eventually(async () => ['aborted', 'abort-pending'].includes(lastPhase()), 60000, 250);
  await TB(['--json', 'recover']);
  const onA = JSON.parse(await TA(['--json', 'recover'])) as Array<{ side: string; action: string; detail: string }>;
  assert.ok(lastPhase() === 'aborted' || onA.some((x) => x.side === 'source' && x.action === 'rolled back'), JSON.stringify(onA));
  await assertOnA(ip);
  await retryThenClean(ip);
});

test("leases left the way main's rollback left them (the source's address owned by the peer's vanished copy): recover frees it on the peer and claims it again on the source", async () => {
  const ip = await runOnA();
  const file = path.join(LEASES, ip);
  const rec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ root: B, container: 'lf', claimedAt: rec['claimedAt'] }));
  const pre = await cli(A, ['--config', CFG, '--json', 'host', 'check', PEER, 'lf'], { env });
  assert.equal(pre.code, 0, `the pre-flight sees a leftover the move will repair: ${pre.stdout}`);
  const onB = JSON.parse(await TB(['--json', 'recover'])) as Array<{ detail: string }>;
  assert.ok(onB.some((x) => x.detail.includes(`address ${ip}`) && /no longer exists/.test(x.detail)), JSON.stringify(onB));
  assert.equal(await readLease(LEASES, ip), undefined);
  const onA = JSON.parse(await TA(['--json', 'recover'])) as Array<{ detail: string }>;
  assert.ok(onA.some((x) => x.detail.includes(`address ${ip}`) && /claimed for it again/.test(x.detail)), JSON.stringify(onA));
  await assertOnA(ip);
  await retryThenClean(ip);
});
