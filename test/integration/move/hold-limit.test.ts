/**
 * The peer's held copy has a time limit (src/agent/hold.ts), with real CRIU,
 * cgroups, a bridge address and a real sshd peer whose agent is the test
 * entry test/helpers/fault-agent.ts: the prepare reply is lost (the agent dies
 * right after prepare) and every abort kills the agent for a while (the abort
 * undeliverable). The source rolls back and runs its copy; the peer, with no
 * command run there, removes its held copy by itself at the limit.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { eventually, REPO } from '../../helpers/cli.js';
import { faultAgentCommand } from '../../helpers/fault-agent.js';
import { leftovers } from '../../helpers/leftovers.js';
import { COUNTER, MovePair } from '../../helpers/move-pair.js';
import { readLease } from '../../../src/network/ipam.js';

const p = new MovePair();
const HOLD_S = 20;
/** longer than the mover's own commit retries (machine.ts DEFAULT_TIMING.commitDeadlineMs, 20 s): the watchdog takes over */
const HOLD_DECIDED_S = 40;

before(async () => {
  await p.start('tsm-peer-hl', '127.0.0.7');
});
after(async () => {
  await p.stop(['hl', 'hd']);
});

/** processes whose argv names the container's directory on B (its supervisor) */
function supervisorsOnB(name: string): number[] {
  const dir = path.join(p.B, 'containers', name);
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((e) => {
    try {
      return readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').includes(dir);
    } catch {
      return false;
    }
  }).map(Number);
}

test('the prepare reply lost and the abort undeliverable: the source runs its copy; the peer removes its held copy by itself at the limit; a retry succeeds', async () => {
  await p.ta(['run', '-d', 'hl', '--image', 'busybox', '--net', 'bridge', '--', ...COUNTER]);
  await eventually(async () => (await p.count(p.A, 'hl')) > 3);
  const st = JSON.parse(readFileSync(path.join(p.A, 'containers/hl/state.json'), 'utf8')) as { network: { ip: string; leaseDir: string } };
  const { ip, leaseDir } = st.network;
  const block = path.join(p.B, 'block-abort');
  writeFileSync(block, '');
  await p.peerCommand(faultAgentCommand(p.B, ['prepare-reply-lost', 'block-abort'], { '--block': block }));
  // the abort stays undeliverable (the source's rollback, its freeze watchdog's retries) until the peer's limit
  const r = await p.move('hl', ['--hold-limit', String(HOLD_S)]);
  // the peer still holds its restored copy, for the source's decision that cannot come
  const rec = p.peerRecords()[0]!;
  assert.equal(rec?.phase, 'prepared', `held on the peer: ${JSON.stringify({ ...rec, begin: undefined })} at ${new Date().toISOString()}`);
  assert.notEqual(r.code, 0, 'the move failed');
  assert.match(r.stderr, /lost|closed|connection/i);
  const tFailed = Date.now();
  assert.ok(rec.holdUntil && Date.parse(rec.holdUntil) > Date.now(), `held until ${rec.holdUntil}`);
  assert.equal(await p.stateOf(p.B, 'hl'), 'creating');
  assert.ok(supervisorsOnB('hl').length > 0, 'a supervisor holds the copy');
  // the source runs its copy
  assert.equal(await p.stateOf(p.A, 'hl'), 'running');
  const c = await p.count(p.A, 'hl');
  await eventually(async () => (await p.count(p.A, 'hl')) > c + 2, 10000);
  // no command run on either host: at the limit the peer removes it
  await eventually(async () => p.peerRecords()[0]?.phase === 'aborted', HOLD_S * 1000 + 10000, 200);
  const tExpired = Date.now();
  const after = p.peerRecords()[0]!;
  assert.equal(after.reason, 'expired');
  assert.ok(tExpired >= Date.parse(rec.holdUntil), 'not before its limit');
  assert.equal(await p.stateOf(p.B, 'hl'), undefined, 'no container on the peer');
  assert.deepEqual(leftovers(p.B, 'hl'), [], 'no cgroups, mounts or state on the peer');
  assert.deepEqual(supervisorsOnB('hl'), [], 'no supervisor on the peer');
  assert.ok(!existsSync(path.join(p.B, 'staging')) || readdirSync(path.join(p.B, 'staging')).length === 0, 'no staging on the peer');
  // the address is the source's container's again (one machine: the lease was handed over and back)
  const lease = await readLease(leaseDir, ip);
  assert.deepEqual([lease?.root, lease?.container], [p.A, 'hl'], `the lease of ${ip}`);
  assert.match(readFileSync(path.join(p.B, 'migrations/guards', `${rec.id}.hold.log`), 'utf8'), /the migration is aborted/);
  console.log(`# held copy removed ${tExpired - tFailed} ms after the move failed, ${tExpired - Date.parse(rec.holdUntil)} ms after its limit`);
  // the abort deliverable again: the source's journal settles (its watchdog, or the next move), a retry succeeds, the address kept
  rmSync(block, { force: true });
  await p.peerCommand(undefined);
  await p.assertOneCopy('hl', 'A');
  const again = await p.move('hl');
  assert.equal(again.code, 0, again.stderr);
  await p.assertOneCopy('hl', 'B');
  assert.equal(p.journals().get(rec.id), 'aborted', 'the pending abort was delivered');
  const moved = await readLease(leaseDir, ip);
  assert.deepEqual([moved?.root, moved?.container], [p.B, 'hl']);
  await p.tb(['rm', '-f', 'hl']);
});

test('decided, the commit undeliverable until the held copy expired: the source stays frozen (never two copies), then the peer refuses the commit and the freeze watchdog runs the source copy again; a retry succeeds', async () => {
  await p.ta(['run', '-d', 'hd', '--image', 'busybox', '--net', 'bridge', '--', ...COUNTER]);
  await eventually(async () => (await p.count(p.A, 'hd')) > 3);
  const block = path.join(p.B, 'block-commit');
  writeFileSync(block, '');
  await p.peerCommand(faultAgentCommand(p.B, ['block-commit'], { '--block': block }));
  let id = '';
  try {
    const r = await p.move('hd', ['--hold-limit', String(HOLD_DECIDED_S)]);
    assert.notEqual(r.code, 0, 'the move failed');
    assert.match(r.stderr, /decided but not finished/);
    id = [...p.journals().keys()].sort().pop()!;
    assert.equal(p.journals().get(id), 'decided');
    // decided: the source copy stays frozen while the peer may still commit
    assert.equal(await p.stateOf(p.A, 'hd'), 'frozen');
    assert.equal(p.peerRecords().find((m) => m.id === id)?.phase, 'prepared');
    // no command run: the peer's copy expires, the guard's next commit is refused, the source copy runs
    await eventually(async () => p.journals().get(id) === 'aborted', HOLD_DECIDED_S * 1000 + 45000, 250);
  } finally {
    await p.peerCommand(undefined);
  }
  const rec = p.peerRecords().find((m) => m.id === id)!;
  assert.deepEqual([rec.phase, rec.reason], ['aborted', 'expired']);
  assert.match(readFileSync(path.join(p.A, 'migrations/guards', `${id}.move.log`), 'utf8'), /given its restored copy up/);
  await p.assertOneCopy('hd', 'A');
  rmSync(block, { force: true });
  const again = await p.move('hd');
  assert.equal(again.code, 0, again.stderr);
  await p.assertOneCopy('hd', 'B');
  await p.tb(['rm', '-f', 'hd']);
});
