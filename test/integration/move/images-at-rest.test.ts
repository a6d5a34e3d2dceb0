/**
 * A byte of a pages image flipped on the peer after it arrived and before
 * CRIU read it (LocalAgent.faultAtRest, under the agent's test fault
 * `corrupt-at-rest`), over real SSH with real CRIU, in both restore modes:
 * the move fails with one clear line, the container runs on the source with
 * its memory intact (the workload checks a checksum of its own memory),
 * nothing is left on the peer, and a retry succeeds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';
import { moveCli } from '../../helpers/move-cli.js';
import { Rig } from '../../helpers/rig.js';
import { addFaultPeer, type FaultPeer } from '../../helpers/fault-peer.js';

const A = tempRoot('tsm-rest-a-');
const CFG = path.join(A, 'config.yaml');
const PEER = 'tsm-rest-b';
const rig = new Rig();
let B = '';
let setFault: FaultPeer['setFault'];
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
// about 1 MB of random hex held in the shell's memory, its md5 checked every 200 ms
const WORKLOAD = [
  'sh', '-c',
  'x=$(head -c 500000 /dev/urandom | od -An -tx1 | tr -d " \\n"); s=$(echo "$x" | md5sum); i=0; ' +
    'while true; do i=$((i+1)); if [ "$(echo "$x" | md5sum)" = "$s" ]; then echo "ok $i" > /tmp/m.new; else echo BAD > /tmp/m.new; fi; mv /tmp/m.new /tmp/mem; sleep 0.2; done',
];

before(async () => {
  const peer = await addFaultPeer(rig, PEER, '127.0.0.24', A, TA);
  B = peer.root;
  setFault = peer.setFault;
  await importBusybox(A);
});
after(async () => {
  await cli(A, ['rm', '-f', 'mem']);
  if (B) await cli(B, ['rm', '-f', 'mem']);
  rig.stopAll(PEER);
  rmSync(A, { recursive: true, force: true });
});

/** The workload's own verdict on its memory: the check count, or -1 when it found it changed. */
async function memory(root: string): Promise<number> {
  const s = (await cliOk(root, ['exec', 'mem', '--', 'cat', '/tmp/mem'])).trim();
  return s.startsWith('ok ') ? Number(s.slice(3)) : -1;
}
const state = async (root: string) => (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === 'mem')?.state;

for (const mode of ['while receiving', 'after the transfer'] as const) {
  test(`a pages image corrupted at rest on the peer, restoring ${mode}: refused before the resume, the source runs on with its memory`, async () => {
    const flags = mode === 'after the transfer' ? ['--no-restore-while-receiving'] : [];
    await TA(['run', '-d', 'mem', '--image', 'busybox', '--memory', '64m', '--', ...WORKLOAD]);
    await eventually(async () => (await memory(A)) > 2, 30000);
    await setFault('corrupt-at-rest');
    let r;
    try {
      r = await moveCli(A, ['--config', CFG, '--json', 'move', 'mem', PEER, ...flags], { env });
    } finally {
      await setFault(undefined);
    }
    assert.notEqual(r.code, 0, 'the move failed');
    const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, /the image pages-\d+\.img changed on the peer after it arrived/);
    assert.ok(!r.phases.includes('resume'), `never resumed on the peer: ${r.phases.join(' ')}`);
    // the source: running, its memory as it was, still checking
    assert.equal(await state(A), 'running');
    const n = await memory(A);
    assert.ok(n > 0, 'the memory checksum holds on the source');
    await eventually(async () => (await memory(A)) > n + 2, 10000);
    // the peer: nothing left
    await eventually(async () => (await state(B)) === undefined && leftovers(B, 'mem').length === 0, 30000);
    const inc = path.join(B, 'migrations/incoming');
    for (const f of existsSync(inc) ? readdirSync(inc) : []) {
      const m = JSON.parse(readFileSync(path.join(inc, f), 'utf8')) as { phase: string; staging?: string };
      assert.ok(['committed', 'aborted'].includes(m.phase), `peer migration ${f} is ${m.phase}`);
      if (m.phase === 'aborted' && m.staging) assert.equal(existsSync(m.staging), false, `staging ${m.staging} removed`);
    }
    // a retry, without the fault, succeeds with the memory intact
    const again = await moveCli(A, ['--config', CFG, '--json', 'move', 'mem', PEER, ...flags], { env });
    assert.equal(again.code, 0, again.stderr);
    const m = await memory(B);
    assert.ok(m > 0, 'the memory checksum holds on the peer');
    await eventually(async () => (await memory(B)) > m + 2, 10000);
    await cliOk(B, ['rm', '-f', 'mem']);
  });
}
