/**
 * The freeze watchdog (src/move/freeze-guard.ts, source-guard.ts) with real
 * CRIU, cgroups and a real sshd peer: the `tsmigrate move` CLI SIGKILLed
 * while the container is frozen and CRIU dumps it. No command is run after:
 * the guard waits for the orphaned dump, thaws the container, has the peer
 * abort, and the journal says aborted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually, sleep, REPO } from '../../helpers/cli.js';
import { COUNTER, MovePair } from '../../helpers/move-pair.js';

const p = new MovePair();

before(async () => {
  await p.start('tsm-peer-fg', '127.0.0.6');
});
after(async () => {
  await p.stop(['fg', 'fg2']);
});

/** CRIU stopped (SIGSTOP, by its action script) at `action`; its pid in the file `pids`. */
function stallAt(action: string): { env: NodeJS.ProcessEnv; pids: string } {
  const conf = path.join(p.A, 'criu-stall.conf');
  writeFileSync(conf, `action-script ${path.join(REPO, 'test/fixtures/criu-stall-action.sh')}\n`);
  const pids = path.join(p.A, `stall-${action}.pids`);
  return { env: { CRIU_CONFIG_FILE: conf, TSM_TEST_STALL_AT: action, TSM_TEST_STALL_PIDS: pids }, pids };
}

function guardLogs(): string {
  const dir = path.join(p.A, 'migrations/guards');
  return existsSync(dir) ? readdirSync(dir).map((f) => `${f}: ${readFileSync(path.join(dir, f), 'utf8')}`).join('\n') : '';
}

test('the move CLI SIGKILLed while frozen (CRIU mid-dump): the guard waits for CRIU, thaws, the peer aborts; no command run; a retry succeeds', async () => {
  await p.ta(['run', '-d', 'fg', '--image', 'busybox', '--memory', '64m', '--', ...COUNTER]);
  await eventually(async () => (await p.count(p.A, 'fg')) > 3);
  const stall = stallAt('post-dump');
  let criuPid = 0;
  const r = await p.move('fg', [], (e, child) => {
    if (e.phase !== 'dump') return;
    void eventually(async () => existsSync(stall.pids) && Number(readFileSync(stall.pids, 'utf8').trim().split('\n')[0]), 30000).then((pid) => {
      criuPid = pid;
      child.kill('SIGKILL');
    });
  }, stall.env);
  assert.equal(r.code, -1, `killed: ${r.stderr} ${guardLogs()}`);
  assert.ok(criuPid > 0, 'CRIU was stalled in its dump');
  // CRIU (orphaned, stopped) still holds the tree: the guard waits for it, the container does not run
  const held = await p.count(p.A, 'fg');
  await sleep(1500);
  assert.equal(await p.count(p.A, 'fg'), held, 'stopped while CRIU still dumps');
  const id = [...p.journals().keys()].sort().pop()!;
  assert.equal(p.journals().get(id), 'frozen');
  const tCont = Date.now();
  process.kill(criuPid, 'SIGCONT');
  // no command run: the guard thaws it within seconds of CRIU's end
  await eventually(async () => (await p.stateOf(p.A, 'fg')) === 'running', 10000, 100);
  const thawMs = Date.now() - tCont;
  const c = await p.count(p.A, 'fg');
  await eventually(async () => (await p.count(p.A, 'fg')) > c + 2, 10000);
  await eventually(async () => p.journals().get(id) === 'aborted', 30000, 200);
  // the guard logs its outcome a moment after the journal's last line
  const logFile = path.join(p.A, 'migrations/guards', `${id}.move.log`);
  await eventually(async () => /rolled back \(journal: aborted\)/.test(readFileSync(logFile, 'utf8')), 10000, 100);
  const log = readFileSync(logFile, 'utf8');
  assert.match(log, /the mover is gone/);
  assert.match(log, /waiting for criu dump/);
  await p.assertOneCopy('fg', 'A');
  assert.ok(p.peerRecords().some((m) => m.id === id && m.phase === 'aborted'), 'the peer aborted it');
  console.log(`# thawed ${thawMs} ms after the orphaned CRIU went on`);
  const again = await p.move('fg');
  assert.equal(again.code, 0, again.stderr);
  await p.assertOneCopy('fg', 'B');
  // the guard of a finished move exits and leaves its journal as it was
  const id2 = [...p.journals().keys()].sort().pop()!;
  await eventually(async () => /nothing to do \(journal: done\)/.test(readFileSync(path.join(p.A, 'migrations/guards', `${id2}.move.log`), 'utf8')), 10000);
  await p.tb(['rm', '-f', 'fg']);
});

test('the move CLI SIGKILLed outside CRIU, while the peer restores: the guard thaws, the peer aborts, history says recovered (rolled back); a retry succeeds', async () => {
  await p.ta(['run', '-d', 'fg2', '--image', 'busybox', '--memory', '64m', '--', ...COUNTER]);
  await eventually(async () => (await p.count(p.A, 'fg2')) > 3);
  const r = await p.move('fg2', [], (e, child) => {
    if (e.phase === 'restore') child.kill('SIGKILL');
  });
  assert.equal(r.code, -1, `killed: ${r.stderr} ${guardLogs()}`);
  const id = [...p.journals().keys()].sort().pop()!;
  await eventually(async () => p.journals().get(id) === 'aborted', 60000, 200);
  await p.assertOneCopy('fg2', 'A');
  assert.ok(p.peerRecords().some((m) => m.id === id && m.phase === 'aborted'), 'the peer aborted it');
  const hist = JSON.parse(await p.ta(['--json', 'history'])) as Array<{ id: string; outcome: string; finished?: string; reason?: string }>;
  const line = hist.find((h) => h.id === id);
  assert.equal(line?.outcome, 'recovered', JSON.stringify(hist));
  assert.equal(line?.finished, 'rolled-back');
  const again = await p.move('fg2');
  assert.equal(again.code, 0, again.stderr);
  await p.assertOneCopy('fg2', 'B');
  await p.tb(['rm', '-f', 'fg2']);
});
