/**
 * What a move leaves for the operator, through the real CLI over real SSH with
 * real CRIU: the CRIU log of a failed dump or restore kept where the message
 * says (on the peer for the peer's restore), quoted in the message; a move
 * whose stdout or stderr reader is gone runs to its end; and `history` has
 * every move with its outcome and why.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, sleep, tempRoot, CLI, REPO } from '../../helpers/cli.js';
import { busyboxRootfs, importBusybox } from '../../helpers/images.js';
import { jsonLines } from '../../helpers/json-lines.js';
import { leftovers } from '../../helpers/leftovers.js';
import { Rig } from '../../helpers/rig.js';

const PEER = 'tsm-peer-out';
const A = tempRoot('tsm-outA-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
let B = '';
let hostCmd: string[] = [];
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 180000 });
const TB = (args: string[]) => cliOk(B, args, { timeoutMs: 60000 });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo tick $i; sleep 0.1; done'];
const NAMES = ['oc', 'oref', 'oint', 'orst', 'otr'];

before(async () => {
  const h = await rig.start(PEER, '127.0.0.9', [A]);
  B = h.root;
  hostCmd = h.addCommand;
  const i = hostCmd.indexOf('--known-hosts') + 1;
  copyFileSync(hostCmd[i]!, path.join(A, 'known_hosts'));
  hostCmd[i] = path.join(A, 'known_hosts');
  await TA(hostCmd);
  await importBusybox(A);
});
after(async () => {
  await cli(A, ['--config', CFG, 'recover'], { env, timeoutMs: 60000 });
  for (const n of NAMES) {
    await cli(A, ['rm', '-f', n]);
    if (B) await cli(B, ['rm', '-f', n]);
  }
  rig.stopAll(PEER);
  rmSync(A, { recursive: true, force: true });
});

async function stateOf(root: string, name: string): Promise<string | undefined> {
  return (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === name)?.state;
}
async function count(root: string, name: string): Promise<number> {
  return Number((await cliOk(root, ['exec', name, '--', 'cat', '/tmp/count'])).trim());
}
async function runCounter(name: string): Promise<void> {
  await TA(['run', '-d', name, '--image', 'busybox', '--', ...counter]);
  await eventually(async () => (await count(A, name)) > 3);
}
/** The journal of the newest move of `name` from A: its phases. */
function journalPhases(name: string): string[] {
  const dir = path.join(A, 'migrations/outgoing');
  const mine = readdirSync(dir).sort().map((f) => readFileSync(path.join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { phase: string; name?: string }))
    .filter((es) => es[0]?.name === name);
  return mine.at(-1)?.map((e) => e.phase) ?? [];
}
interface Entry { id: string; name: string; host: string; outcome: string; reason?: string; report?: { downtime: { totalMs: number } } }
async function history(): Promise<Entry[]> {
  return JSON.parse(await TA(['--json', 'history'])) as Entry[];
}

type Output = 'pipe' | 'gone-at-once' | 'gone-after-a-line' | 'closed';
/**
 * `tsmigrate --json move NAME PEER` with its stdout and stderr as asked:
 * 'gone-at-once' a pipe whose reader closes before anything is written,
 * 'gone-after-a-line' one whose reader closes after the first line (`| head -1`),
 * 'closed' (stderr only) the descriptor closed (`2>&-`).
 */
function moveCli(name: string, out: { stdout: Output; stderr: Output }, onEvent?: (phase: string, kill: (s: NodeJS.Signals) => void) => void) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const argv = [CLI, '--root', A, '--config', CFG, '--json', 'move', name, PEER];
    // `2>&-` needs a shell; the script is fixed and the arguments are passed as such
    const [file, args] = out.stderr === 'closed' ? ['/bin/sh', ['-c', 'exec "$@" 2>&-', 'sh', process.execPath, ...argv]] : [process.execPath, argv];
    const child = spawn(file, args as string[], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', out.stderr === 'closed' ? 'ignore' : 'pipe'] });
    const so = child.stdout!;
    let stderr = '';
    if (out.stdout === 'gone-at-once') so.destroy();
    const stdout = jsonLines(so, (e) => {
      if (out.stdout === 'gone-after-a-line') so.destroy();
      if (e?.event === 'progress' && e.phase) onEvent?.(e.phase, (s) => child.kill(s));
    });
    if (child.stderr) {
      if (out.stderr === 'gone-at-once') child.stderr.destroy();
      else child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    }
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: stdout(), stderr }));
  });
}

test('a move whose stdout reader leaves after one line and whose stderr is closed completes: it runs on the peer, the journal is done, history says committed', async () => {
  await runCounter('oc');
  const r = await moveCli('oc', { stdout: 'gone-after-a-line', stderr: 'closed' });
  assert.equal(r.code, 0, `exit code ${r.code}`);
  assert.equal(r.stdout.split('\n').filter(Boolean).length, 1, 'the reader saw one line and left');
  assert.deepEqual(journalPhases('oc').slice(-3), ['decided', 'committed', 'done']);
  assert.equal(await stateOf(B, 'oc'), 'running');
  assert.equal(await stateOf(A, 'oc'), undefined);
  const c = await count(B, 'oc');
  await eventually(async () => (await count(B, 'oc')) > c + 2);
  const h = (await history()).filter((e) => e.name === 'oc');
  assert.deepEqual(h.map((e) => e.outcome), ['committed']);
  assert.ok(h[0]!.report!.downtime.totalMs > 0);
  await TB(['rm', '-f', 'oc']);
});

test('a move the peer refuses (the name is taken there), its stdout and stderr readers gone: exit code 1, journal aborted, history says refused and why', async () => {
  await runCounter('oref');
  await cliOk(B, ['image', 'import', 'busybox', busyboxRootfs()], { timeoutMs: 120000 }).catch(() => undefined);
  await TB(['run', '-d', 'oref', '--image', 'busybox', '--', 'sleep', '1000']);
  try {
    const r = await moveCli('oref', { stdout: 'gone-after-a-line', stderr: 'gone-at-once' });
    assert.equal(r.code, 1);
    assert.equal(journalPhases('oref').at(-1), 'aborted');
    assert.doesNotMatch(journalPhases('oref').join(' '), /frozen/);
    assert.equal(await stateOf(A, 'oref'), 'running');
    const h = (await history()).filter((e) => e.name === 'oref');
    assert.deepEqual(h.map((e) => e.outcome), ['refused']);
    assert.match(h[0]!.reason ?? '', /a container named "oref" already exists on the peer/);
  } finally {
    await TB(['rm', '-f', 'oref']);
    await TA(['rm', '-f', 'oref']);
  }
});

test('SIGINT during the transfer: rolled back, history says rolled-back: interrupted', async () => {
  await runCounter('oint');
  const r = await moveCli('oint', { stdout: 'pipe', stderr: 'pipe' }, (phase, kill) => phase === 'transfer' && kill('SIGINT'));
  assert.notEqual(r.code, 0);
  assert.equal(journalPhases('oint').at(-1), 'aborted');
  await eventually(async () => (await stateOf(B, 'oint')) === undefined, 15000);
  assert.equal(await stateOf(A, 'oint'), 'running');
  const h = (await history()).filter((e) => e.name === 'oint');
  assert.deepEqual(h.map((e) => e.outcome), ['rolled-back']);
  assert.match(h[0]!.reason ?? '', /^interrupted; /);
  await TA(['rm', '-f', 'oint']);
});

/** The kept log a message names, read: it exists after everything was cleaned up and holds the quoted CRIU line. */
function assertKeptLog(message: string, where: RegExp, root: string): string {
  const m = where.exec(message);
  assert.ok(m, `the message names the kept log: ${message}`);
  const file = m[1]!;
  assert.ok(file.startsWith(path.join(root, 'logs/criu/')), `${file} is under ${root}/logs/criu`);
  assert.ok(existsSync(file), `${file} exists after the cleanup`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const quoted = /CRIU logged: "([^"]+)"/.exec(message)?.[1];
  assert.ok(quoted && /^(Error|Warn) \(/.test(quoted), `the message quotes a CRIU line: ${message}`);
  const text = readFileSync(file, 'utf8');
  const [, level, source, rest] = /^(Error|Warn) \(([^)]*)\): (.*)$/.exec(quoted)!;
  assert.ok(text.split('\n').some((l) => l.includes(`${level}`) && l.includes(`(${source}): `) && l.includes(rest!.replace(/\.\.\.$/, ''))), `${file} holds "${quoted}"`);
  return file;
}

test("the peer's real CRIU failing its restore: the message names the peer's kept log and quotes CRIU; history says rolled-back with it", async (t) => {
  await runCounter('orst');
  const conf = path.join(A, 'criu-fail.conf');
  writeFileSync(conf, `action-script ${path.join(REPO, 'test/fixtures/criu-fail-action.sh')}\n`);
  await TA(['host', 'rm', PEER]);
  const i = hostCmd.indexOf('--command') + 1;
  const faulty = [...hostCmd];
  faulty[i] = `env CRIU_CONFIG_FILE=${conf} TSM_TEST_FAIL_AT=pre-restore ${hostCmd[i]}`;
  await TA(faulty);
  let r: { code: number; stderr: string };
  try {
    r = await moveCli('orst', { stdout: 'pipe', stderr: 'pipe' });
  } finally {
    await TA(['host', 'rm', PEER]);
    await TA(hostCmd);
  }
  assert.notEqual(r.code, 0);
  const line = r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error'));
  assert.equal(line.length, 1, r.stderr);
  assert.match(line[0]!, /criu restore failed/);
  t.diagnostic(line[0]!);
  await eventually(async () => (await stateOf(B, 'orst')) === undefined && leftovers(B, 'orst').length === 0, 20000);
  assertKeptLog(line[0]!, new RegExp(`\\(CRIU log on ${PEER}: (\\S+)\\)`), B);
  assert.equal(await stateOf(A, 'orst'), 'running');
  const h = (await history()).filter((e) => e.name === 'orst');
  assert.deepEqual(h.map((e) => e.outcome), ['rolled-back']);
  assert.match(h[0]!.reason ?? '', new RegExp(`criu restore failed: .*\\(CRIU log on ${PEER}: `));
  await TA(['rm', '-f', 'orst']);
});

test('a dump CRIU refuses on the source (a traced process): the message names the kept log under the state root and quotes CRIU', async (t) => {
  await runCounter('otr');
  const pid = Number(readFileSync(path.join(A, 'containers/otr/init.pid'), 'utf8'));
  const strace = spawn('strace', ['-p', String(pid), '-o', '/dev/null'], { stdio: 'ignore' });
  let r: { code: number; stderr: string };
  try {
    await sleep(500);
    r = await moveCli('otr', { stdout: 'pipe', stderr: 'pipe' });
  } finally {
    strace.kill('SIGINT');
  }
  assert.notEqual(r.code, 0);
  const line = r.stderr.trim().split('\n').filter((l) => l.startsWith('tsmigrate: error'));
  assert.equal(line.length, 1, r.stderr);
  assert.match(line[0]!, /criu dump failed/);
  t.diagnostic(line[0]!);
  assertKeptLog(line[0]!, /\(CRIU log: (\S+)\)/, A);
  await eventually(async () => (await stateOf(A, 'otr')) === 'running', 10000);
  assert.equal(await stateOf(B, 'otr'), undefined);
  assert.deepEqual((await history()).filter((e) => e.name === 'otr').map((e) => e.outcome), ['rolled-back']);
  await TA(['rm', '-f', 'otr']);
});

test('history shows every move with its outcome, the table too', async () => {
  const all = await history();
  assert.deepEqual(all.map((e) => [e.name, e.outcome]), [['oc', 'committed'], ['oref', 'refused'], ['oint', 'rolled-back'], ['orst', 'rolled-back'], ['otr', 'rolled-back']]);
  const table = await TA(['history']);
  assert.match(table.split('\n')[0]!, /WHEN\s+MIGRATION\s+CONTAINER\s+HOST\s+OUTCOME\s+DOWNTIME.*REASON$/);
  for (const e of all) assert.match(table, new RegExp(`${e.id}\\s+${e.name}\\s+${PEER}\\s+${e.outcome}`));
});
