/**
 * Any init can be checkpointed: what a container's stdout and stderr were
 * handed (the supervisor's pipes) is recorded, not what its init's fds 1 and 2
 * are now. With real CRIU: checkpoint and restore, and a move over SSH to a
 * local host, of an init that redirected its stdio to a file at once (with a
 * child started before that still writing to the pipe) and of one that closed
 * stdin, stdout and stderr. After each the tree runs on with its state (an
 * in-memory counter), and the piped child's output still reaches `logs`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { Rig } from '../../helpers/rig.js';

const A = tempRoot('tsm-stdio-A-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
const PEER = 'tsm-peer-stdio';
let B = '';
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });

/**
 * The init counts in a shell variable (in memory) and writes the count to a
 * file; `piped` is a child started before the init's redirect, still writing
 * "piped N" to the pipe the supervisor handed the init.
 */
const INITS = {
  redirected: ['sh', '-c', '(i=0; while true; do i=$((i+1)); echo piped $i; sleep 0.2; done) & exec >/var/log/app.log 2>&1 </dev/null; n=0; while true; do n=$((n+1)); echo $n > /tmp/count.n; mv /tmp/count.n /tmp/count; echo file $n; sleep 0.1; done'],
  closed: ['sh', '-c', 'exec <&- >&- 2>&-; n=0; while true; do n=$((n+1)); echo $n > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'],
};
type Kind = keyof typeof INITS;

before(async () => {
  const h = await rig.start(PEER, '127.0.0.3', [A]);
  B = h.root;
  const i = h.addCommand.indexOf('--known-hosts') + 1;
  copyFileSync(h.addCommand[i]!, path.join(A, 'known_hosts'));
  h.addCommand[i] = path.join(A, 'known_hosts');
  await TA(h.addCommand);
  await importBusybox(A);
});
after(async () => {
  for (const n of ['redirected', 'closed', 'redirected-r', 'closed-r', 'legacy']) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll(PEER);
  rmSync(A, { recursive: true, force: true });
});

async function count(root: string, name: string): Promise<number> {
  return Number(readFileSync(path.join(root, 'containers', name, 'rootfs/upper/tmp/count'), 'utf8').trim() || 0);
}
function state(root: string, name: string): { initPid: number; shimPid: number; stdio?: { stdout: string; stderr: string } } {
  return JSON.parse(readFileSync(path.join(root, 'containers', name, 'state.json'), 'utf8')) as ReturnType<typeof state>;
}
/** the highest "piped N" in the container's log */
async function lastPiped(root: string, name: string): Promise<number> {
  const out = await cliOk(root, ['logs', name]);
  return Math.max(0, ...[...out.matchAll(/^piped (\d+)$/gm)].map((m) => Number(m[1])));
}
const fdLinks = (pid: number) => readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));

async function start(kind: Kind) {
  await TA(['run', '-d', kind, '--image', 'busybox', '--', ...INITS[kind]]);
  await eventually(async () => (await count(A, kind)) > 5);
  const st = state(A, kind);
  // what run recorded: the supervisor's pipes, which the init itself no longer has
  assert.match(st.stdio?.stdout ?? '', /^pipe:\[\d+\]$/);
  const shimFds = fdLinks(st.shimPid);
  assert.ok(shimFds.includes(st.stdio!.stdout) || kind === 'closed', 'stdout is the pipe the supervisor reads');
  const initFds = fdLinks(st.initPid);
  assert.ok(!initFds.includes(st.stdio!.stdout), `the init no longer holds its stdout pipe (${initFds.join(' ')})`);
  if (kind === 'redirected') await eventually(async () => (await lastPiped(A, kind)) > 2);
}

/** runs on, counting on from at least `from`; the piped child (if any) still reaches logs */
async function assertGoesOn(root: string, name: string, kind: Kind, from: number) {
  const c = await count(root, name);
  assert.ok(c >= from, `the in-memory count went on from ${from} (now ${c}), not from 0`);
  await eventually(async () => (await count(root, name)) > c + 3, 10000);
  if (kind === 'redirected') {
    const out = await cliOk(root, ['exec', name, '--', 'tail', '-n', '1', '/var/log/app.log']);
    assert.match(out, /^file \d+$/m, 'the init writes on to its file');
    const p = await lastPiped(root, name);
    await eventually(async () => (await lastPiped(root, name)) > p + 2, 10000);
  }
}

for (const kind of ['redirected', 'closed'] as const) {
  test(`an init that ${kind === 'redirected' ? 'redirected its stdio to a file at once' : 'closed stdin, stdout and stderr'}: checkpoint, restore, move`, async () => {
    await start(kind);
    // (read before the checkpoint: the container runs on past it)
    const before = await count(A, kind);
    await TA(['checkpoint', kind]);
    const [ck] = JSON.parse(await TA(['--json', 'checkpoints', kind])) as Array<{ id: string }>;
    await TA(['restore', ck!.id, '--name', `${kind}-r`]);
    // restored from images in which the supervisor's pipes may not appear at all (closed): CRIU takes the keys anyway
    await assertGoesOn(A, `${kind}-r`, kind, before);
    assert.match(state(A, `${kind}-r`).stdio?.stdout ?? '', /^pipe:\[\d+\]$/, 'the restore recorded its new pipes');
    // and the restored copy can be checkpointed again
    await TA(['checkpoint', `${kind}-r`]);
    await TA(['rm', '-f', `${kind}-r`]);

    const beforeMove = await count(A, kind);
    await TA(['move', kind, PEER]);
    assert.deepEqual(leftovers(A, kind), [], 'nothing left on the source');
    await assertGoesOn(B, kind, kind, beforeMove);
    // the moved copy recorded the pipes its new supervisor made, and can be checkpointed there
    assert.match(state(B, kind).stdio?.stdout ?? '', /^pipe:\[\d+\]$/);
    await TB(['checkpoint', kind]);
    await TB(['rm', '-f', kind]);
  });
}

test('a container recorded before the supervisor reported its pipes (no stdio in state.json) is checkpointed with the supervisor\'s pipes', async () => {
  await TA(['run', '-d', 'legacy', '--image', 'busybox', '--', ...INITS.redirected]);
  await eventually(async () => (await count(A, 'legacy')) > 3);
  const file = path.join(A, 'containers', 'legacy', 'state.json');
  const st = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> & { stdio: { stdout: string; stderr: string } };
  const recorded = st.stdio;
  delete (st as Record<string, unknown>)['stdio'];
  writeFileSync(file, JSON.stringify(st));
  await TA(['checkpoint', 'legacy']);
  const [ck] = JSON.parse(await TA(['--json', 'checkpoints', 'legacy'])) as Array<{ id: string }>;
  const manifest = JSON.parse(readFileSync(path.join(A, 'checkpoints', ck!.id, 'manifest.json'), 'utf8')) as { stdio: unknown };
  assert.deepEqual(manifest.stdio, recorded, 'the same pipes as a new container records');
  await TA(['rm', '-f', 'legacy']);
  await TA(['restore', ck!.id]);
  await assertGoesOn(A, 'legacy', 'redirected', 0);
  await TA(['rm', '-f', 'legacy']);
});
