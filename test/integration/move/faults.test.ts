/**
 * The move fault suite (issue 15): real sshd peers on loopback, real CRIU,
 * faults injected into real moves of one container. After every fault:
 * exactly one running copy, the workload's memory intact
 * (test/fixtures/memcheck.c verifies every word of its buffer on each pass),
 * nothing left on any host, and a retry that succeeds (fault-assert.ts). The
 * hosts are peers of each other, so the container goes back and forth: each
 * fault starts where the last move left it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FAULT_CLI, REPO, eventually, sleep } from '../../helpers/cli.js';
import { faultLog, findProcesses } from '../../helpers/fault-agent.js';
import { assertAfterFault, psRows, type FaultHost, type Subject } from '../../helpers/fault-assert.js';
import { FaultRig, type MoveRun } from '../../helpers/fault-rig.js';
import { importMemcheck, memcheckWorkload, readMemcheck } from '../../helpers/memcheck.js';

const rig = new FaultRig();
let hosts: FaultHost[] = [];
let here: FaultHost;
let pass = 0;
const w = memcheckWorkload();
const s: Subject = { name: 'mc0', status: w.status };
const other = () => hosts.find((h) => h !== here)!;
const errorLines = (r: MoveRun) => r.stderr.split('\n').filter((l) => l.startsWith('tsmigrate: error'));

before(async () => {
  hosts = await rig.start(['fs-a', '127.0.0.3'], ['fs-b', '127.0.0.4'], ['fs-c', '127.0.0.5']);
  await importMemcheck(hosts[0]!.root);
});
after(async () => {
  await rig.wipe(s);
  await rig.stop();
});

/** Set by a test as it starts and cleared when it passes: the next one starts afresh after a failure. */
let dirty = true;
let generation = 0;

/**
 * Where the container runs now; a fresh one on the first host after a failed
 * test (whatever it left must not fail the tests after it).
 */
async function locate(): Promise<void> {
  if (!dirty) {
    for (const h of hosts) if ((await psRows(h.root)).find((r) => r.name === s.name)?.state === 'running') return void (here = h);
  }
  dirty = true;
  await rig.wipe(s);
  // a new name: the hosts keep the epochs they saw of the old one (a fresh copy of it would be refused as stale)
  s.name = `mc${++generation}`;
  here = hosts[0]!;
  await rig.cliOk(here, ['run', '-d', s.name, '--image', 'memcheck', '--net', 'bridge', '--memory', '64m', '--', ...w.argv]);
  const pid = (await psRows(here.root)).find((r) => r.name === s.name)!.pid!;
  pass = await eventually(async () => {
    const st = readMemcheck(pid, s.status);
    return st?.ok && st.pass > 3 ? st.pass : undefined;
  });
}

/** A test of the suite: it starts where the container runs (afresh after a failed test). */
function faultTest(name: string, body: () => Promise<void>): void {
  test(name, async () => {
    await locate();
    dirty = true;
    await body();
    dirty = false;
  });
}

/** The two-host pair of a test: the container's host and the next one. */
const pairs = () => [here, hosts.filter((h) => h !== here)[0]!] as const;

/**
 * A fault on a move from `here` to the next host: the move fails with one
 * error line matching `expect`, the container still runs `here` with
 * everything intact; a retry moves it over.
 */
async function faultThenRetry(fault: (from: FaultHost, to: FaultHost) => Promise<MoveRun>, expect: RegExp): Promise<void> {
  const [from, to] = pairs();
  const r = await fault(from, to);
  assert.notEqual(r.code, 0, `the move failed (${r.stdout.slice(-300)})`);
  assert.equal(errorLines(r).length, 1, r.stderr);
  assert.match(errorLines(r)[0]!, expect, r.stderr);
  pass = (await assertAfterFault(hosts, s, { where: from, since: pass })).pass;
  await retry(from, to);
}

async function retry(from: FaultHost, to: FaultHost): Promise<void> {
  const again = await rig.move(from, s.name, to.name);
  assert.equal(again.code, 0, again.stderr);
  pass = (await assertAfterFault(hosts, s, { where: to, since: pass })).pass;
  here = to;
}

/** pid of the nearest ancestor of `pid` named `comm` */
function ancestor(pid: number, comm: string): number | undefined {
  for (let p = pid; p > 1; ) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) === comm && p !== pid) return p;
    p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return undefined;
}

/** SIGKILL the first process matching `match` once one appears (polled every 5 ms for up to `ms`); the pid killed. */
async function killWhenSeen(match: (argv: string[]) => boolean, ms = 20000): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    const [pid] = findProcesses(match);
    if (pid) {
      process.kill(pid, 'SIGKILL');
      return pid;
    }
    await sleep(5);
  }
  return undefined;
}

const agentOf = (root: string) => (argv: string[]) => argv.includes('--stdio') && argv.includes(root);

faultTest('the peer failing its restore, while the images arrive', async () => {
  await faultThenRetry(async (from, to) => rig.move(from, s.name, await rig.addHost(from, to, 'fail-restore')), /restore failed on the peer \(injected\)/);
});

for (const mode of [[], ['--no-restore-while-receiving']]) {
  faultTest(`the peer agent SIGKILLed while criu restore runs (${mode.length ? 'after the transfer' : 'while the images arrive'})`, async () => {
    await faultThenRetry(async (from, to) => {
      const before = faultLog(to.root).length;
      const r = await rig.move(from, s.name, await rig.addHost(from, to, 'kill-in-criu-restore'), { args: mode });
      assert.deepEqual(faultLog(to.root).slice(before), ['killed during criu restore']);
      return r;
    }, /lost|closed|connection|peer/i);
  });
}

faultTest('the SSH connection killed mid-transfer', async () => {
  let killed: number | undefined;
  await faultThenRetry((from, to) => rig.move(from, s.name, to.name, {
    onEvent: (e) => {
      if (e.phase !== 'transfer' || killed) return;
      // the peer's sshd session process of this connection: the TCP connection drops with it
      const [agent] = findProcesses(agentOf(to.root));
      killed = agent && ancestor(agent, 'sshd');
      if (killed) process.kill(killed, 'SIGKILL');
    },
  }), /lost|closed|connection|peer/i);
  assert.ok(killed, 'an sshd session was killed during the transfer');
});

faultTest('criu dump SIGKILLed', async () => {
  let killed: Promise<number | undefined> | undefined;
  await faultThenRetry(async (from, to) => {
    const pid = String((await psRows(from.root)).find((r) => r.name === s.name)!.pid);
    return rig.move(from, s.name, to.name, {
      onEvent: (e) => {
        if (e.phase === 'freeze' && !killed) killed = killWhenSeen((a) => a.includes('dump') && a[a.indexOf('--tree') + 1] === pid, 20000);
      },
    });
  }, /criu|dump|killed|signal/i);
  assert.ok(await killed, 'criu dump was found and killed');
});

faultTest('a byte corrupted on the wire', async () => {
  // -v: the peer's stderr comes along in the CLI's (debug lines), for the message when it goes wrong
  await faultThenRetry((from, to) => rig.move(from, s.name, to.name, { args: ['-v'], entry: [FAULT_CLI, '--fault', 'corrupt-images'] }), /corrupt|invalid|tar|zstd/i);
});

faultTest("a broken CRIU on the peer (every restore fails)", async () => {
  await faultThenRetry(async (from, to) => {
    const name = `${to.name}.broken-criu`;
    await rig.addHostCommand(from, to, name, ['/usr/bin/env', `TSMIGRATE_CRIU=${path.join(REPO, 'test/fixtures/broken-criu.sh')}`]);
    return rig.move(from, s.name, name);
  }, /broken-criu fixture|restore/);
});

faultTest("the peer's host key changed: refused before the freeze with both fingerprints", async () => {
  await faultThenRetry(async (from, to) => {
    rig.rig.run('rekey', to.name);
    try {
      const r = await rig.move(from, s.name, to.name);
      assert.ok(!r.events.some((e) => e.phase === 'freeze'), 'nothing was frozen');
      return r;
    } finally {
      rig.retrust(to);
    }
  }, /host key .* changed: expected SHA256:\S+, presented SHA256:\S+/);
});

faultTest('SIGINT to the CLI as each phase starts: one copy, intact, nothing left, every time', async () => {
  // every phase a move without a fault goes through (a phase it does not reach fails the test)
  const phases = ['connect', 'preflight', 'probe', 'upper', 'warm', 'freeze', 'dump', 'transfer', 'restore', 'resume', 'cleanup'];
  const outcomes: string[] = [];
  const failures: string[] = [];
  for (const phase of phases) {
    const [from, to] = pairs();
    let sent = false;
    const r = await rig.move(from, s.name, to.name, {
      onEvent: (e, child) => {
        if (e.phase === phase && !sent) sent = child.kill('SIGINT');
      },
    });
    const outcome = `${phase}: ${r.code === 0 ? 'moved' : `rolled back (${errorLines(r).join(' ')})`}`;
    outcomes.push(outcome);
    try {
      assert.ok(sent, `the move reached ${phase} (phases seen: ${FaultRig.phases(r).join(' ')})`);
      // before the point of no return it rolls back; after it, it completes
      const after = await assertAfterFault(hosts, s, { since: pass, where: r.code === 0 ? to : from });
      pass = after.pass;
      here = after.host;
    } catch (e) {
      // start the next phase from a clean slate, so that each phase's failure is its own
      failures.push(`SIGINT at ${outcome}: ${(e as Error).message}`);
      dirty = true;
      await locate();
      dirty = true;
    }
  }
  assert.deepEqual(failures, []);
  // and a move with no signal still goes through
  const [from, to] = pairs();
  await retry(from, to);
  assert.ok(outcomes.some((o) => o.includes('rolled back')), outcomes.join('; '));
});

faultTest('two moves of one container within 10 ms, to two hosts: one wins, the other fails at once, one copy', async () => {
  const [b, c] = hosts.filter((h) => h !== here);
  const t0 = performance.now();
  const first = rig.move(here, s.name, b!.name);
  const second = rig.move(here, s.name, c!.name);
  const gap = performance.now() - t0;
  assert.ok(gap < 10, `started ${gap.toFixed(1)} ms apart`);
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal([r1, r2].filter((r) => r.code === 0).length, 1, `one move won: ${r1.stderr}${r2.stderr}`);
  const loser = r1.code === 0 ? r2 : r1;
  assert.equal(loser.code, 75, loser.stderr);
  assert.match(loser.stderr, /busy/);
  assert.ok(loser.ms < 5000, `the loser failed at once (${Math.round(loser.ms)} ms)`);
  const winner = r1.code === 0 ? b! : c!;
  pass = (await assertAfterFault(hosts, s, { where: winner, since: pass })).pass;
  here = winner;
});

faultTest('A to B to A to B with no pause', async () => {
  const [a, b] = pairs();
  for (const [from, to] of [[a, b], [b, a], [a, b]] as const) {
    const r = await rig.move(from, s.name, to.name);
    assert.equal(r.code, 0, `${from.name} -> ${to.name}: ${r.stderr}`);
  }
  pass = (await assertAfterFault(hosts, s, { where: b, since: pass })).pass;
  here = b;
});

faultTest('a link limited to 8 MB/s (a relay in front of the peer\'s sshd): the move goes at that rate and lands intact', async () => {
  const [from, to] = pairs();
  const rate = 8_000_000;
  const { name, link } = await rig.addSlowHost(from, to, rate);
  try {
    const r = await rig.move(from, s.name, name, { args: ['--compress', 'off'] });
    assert.equal(r.code, 0, r.stderr);
    const rep = r.report as { bytes: { images: number }; downtime: { dumpMs: number; transferMs: number } };
    // the images went through the link while CRIU wrote them: dump and transfer together took them at most at the link's rate
    const mbps = rep.bytes.images / ((rep.downtime.dumpMs + rep.downtime.transferMs) / 1000) / 1e6;
    assert.ok(mbps <= (rate / 1e6) * 1.15, `the images went at ${mbps.toFixed(1)} MB/s through an ${rate / 1e6} MB/s link`);
    assert.ok(link.relayed.up >= rep.bytes.images, `the move went through the relay (${link.relayed.up} bytes)`);
  } finally {
    await link.close();
  }
  pass = (await assertAfterFault(hosts, s, { where: to, since: pass })).pass;
  here = to;
});

faultTest('--max-downtime over a 2 MB/s link: the estimate does not fit, refused before the freeze with the estimate; nothing frozen, nothing on the peer', async () => {
  const [from, to] = pairs();
  const { name, link } = await rig.addSlowHost(from, to, 2_000_000);
  try {
    const r = await rig.move(from, s.name, name, { args: ['--compress', 'off', '--max-downtime', '1s'] });
    assert.notEqual(r.code, 0);
    assert.equal(errorLines(r).length, 1, r.stderr);
    assert.match(errorLines(r)[0]!, /cannot move to .* within its bound: the downtime would be about \d+(\.\d)? s \(dump .*transfer .* at [12] MB\/s.*\), over the --max-downtime of 1\.0 s; nothing was frozen/);
    assert.ok(!FaultRig.phases(r).includes('freeze'), `never frozen (${FaultRig.phases(r).join(' ')})`);
  } finally {
    await link.close();
  }
  pass = (await assertAfterFault(hosts, s, { where: from, since: pass })).pass;
});

faultTest('--max-downtime 2s, the link slowing to 500 kB/s once frozen: rolled back within the bound, thawed, measured from outside', async () => {
  const [from, to] = pairs();
  const { name, link } = await rig.addSlowHost(from, to, 400_000_000);
  const pid = (await psRows(from.root)).find((x) => x.name === s.name)!.pid!;
  // from outside the container: the longest time its pass counter stood still
  const passOf = () => {
    const st = readMemcheck(pid, s.status);
    return st?.ok ? st.pass : -1;
  };
  let last = { pass: passOf(), at: performance.now() };
  let longest = 0;
  const poll = setInterval(() => {
    const p = passOf();
    const now = performance.now();
    if (p !== last.pass) {
      longest = Math.max(longest, now - last.at);
      last = { pass: p, at: now };
    }
  }, 10);
  let froze = false;
  try {
    const r = await rig.move(from, s.name, name, {
      args: ['--compress', 'off', '--max-downtime', '2s'],
      onEvent: (e) => {
        if (e.phase === 'freeze' && !froze) {
          froze = true;
          link.setRate(500_000);
        }
      },
    });
    assert.ok(froze, 'it froze: the estimate fitted');
    assert.notEqual(r.code, 0);
    assert.equal(errorLines(r).length, 1, r.stderr);
    assert.match(errorLines(r)[0]!, /ran over its --max-downtime of 2\.0 s while frozen .*rolled back and the container runs on here/);
    const p0 = passOf();
    await eventually(async () => passOf() > p0 + 2, 10000);
    // the counter's own period (a pass over 16 MiB) and the 10 ms poll come on top of the downtime
    assert.ok(longest > 1000 && longest < 2000 + 400, `the counter stood still for ${Math.round(longest)} ms at most`);
  } finally {
    clearInterval(poll);
    await link.close();
  }
  pass = (await assertAfterFault(hosts, s, { where: from, since: pass })).pass;
});
