import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planConfig, shimRunArgs } from '../../../src/container/run.js';
import { LEGACY_PROFILE } from '../../../src/security/profile.js';
import { checkTerminal, shimExecArgs } from '../../../src/container/exec.js';
import { deriveStatus, refusal } from '../../../src/container/status.js';
import type { ContainerRuntimeState } from '../../../src/container/types.js';
import { DEFAULT_LOG_POLICY, logPolicyOf } from '../../../src/container/log-files.js';
import { oomReport } from '../../../src/container/oom.js';
import { oomCell } from '../../../src/cli/output.js';
import { supervisorArgs } from '../../../src/shim/supervisor-args.js';

const img = { name: 'busybox', digest: 'sha256:' + 'a'.repeat(64) };

test('planConfig fills PATH, HOSTNAME and HOME, keeps user values', () => {
  const c = planConfig({ name: 'w', image: 'busybox', command: ['sh'], env: ['A=1'], limits: {}, net: 'none' }, img, new Date(0), LEGACY_PROFILE);
  assert.deepEqual(c.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1', 'HOSTNAME=w', 'HOME=/root']);
  assert.equal(c.hostname, 'w');
  assert.equal(c.workdir, '/');
  assert.equal(c.createdAt, '1970-01-01T00:00:00.000Z');
  const d = planConfig({ name: 'w', image: 'b', command: ['sh'], env: ['PATH=/x', 'HOME=/h'], hostname: 'h1', limits: {}, net: 'none', user: { uid: 5, gid: 6 } }, img, new Date(0), LEGACY_PROFILE);
  assert.deepEqual(d.env, ['PATH=/x', 'HOME=/h', 'HOSTNAME=h1']);
});

test('shim argv keeps the command after -- verbatim', () => {
  const c = planConfig({ name: 'w', image: 'b', command: ['sh', '-c', 'echo "$HOME"; --x'], env: [], limits: {}, net: 'none', user: { uid: 1, gid: 2 } }, img, new Date(0), LEGACY_PROFILE);
  const a = shimRunArgs(c, '/r', undefined);
  assert.deepEqual(a.slice(a.indexOf('--') + 1), ['sh', '-c', 'echo "$HOME"; --x']);
  assert.ok(a.includes('--user') && a[a.indexOf('--user') + 1] === '1:2');
  const e = shimExecArgs(42, { memory: '/sys/fs/cgroup/memory/t/w' }, ['A=1'], { name: 'w', command: ['id'] });
  assert.deepEqual(e.slice(0, 5), ['exec', '--pid', '42', '--cgroup-procs', '/sys/fs/cgroup/memory/t/w/cgroup.procs']);
});

test('run -t: the config says tty, TERM=xterm unless set, the shim gets --tty and the first window size', () => {
  const c = planConfig({ name: 'w', image: 'b', command: ['sh'], env: [], limits: {}, net: 'none', tty: true }, img, new Date(0), LEGACY_PROFILE);
  assert.equal(c.tty, true);
  assert.ok(c.env.includes('TERM=xterm'));
  const a = shimRunArgs(c, '/r', undefined, undefined, { rows: 37, cols: 111 });
  assert.deepEqual(a.slice(a.indexOf('--tty'), a.indexOf('--tty') + 3), ['--tty', '--tty-size', '37x111']);
  const own = planConfig({ name: 'w', image: 'b', command: ['sh'], env: ['TERM=vt100'], limits: {}, net: 'none', tty: true }, img, new Date(0), LEGACY_PROFILE);
  assert.deepEqual(own.env.filter((e) => e.startsWith('TERM=')), ['TERM=vt100']);
  const plain = planConfig({ name: 'w', image: 'b', command: ['sh'], env: [], limits: {}, net: 'none' }, img, new Date(0), LEGACY_PROFILE);
  assert.equal('tty' in plain, false);
  assert.ok(!shimRunArgs(plain, '/r', undefined, undefined, { rows: 1, cols: 1 }).includes('--tty'));
});

test('exec argv: -i and -t become shim flags before --, a terminal gets TERM=xterm unless one is set', () => {
  const plain = shimExecArgs(42, {}, ['A=1'], { name: 'w', command: ['sh'] });
  assert.deepEqual(plain, ['exec', '--pid', '42', '--cwd', '/', '--env', 'A=1', '--', 'sh']);
  const it = shimExecArgs(42, {}, ['A=1'], { name: 'w', command: ['sh', '--tty'], interactive: true, tty: true });
  assert.deepEqual(it, ['exec', '--pid', '42', '--cwd', '/', '--env', 'A=1', '--env', 'TERM=xterm', '--interactive', '--tty', '--', 'sh', '--tty']);
  const own = shimExecArgs(42, {}, ['TERM=vt100'], { name: 'w', command: ['sh'], tty: true });
  assert.deepEqual(own.filter((a) => a.startsWith('TERM=')), ['TERM=vt100']);
  const mine = shimExecArgs(42, {}, [], { name: 'w', command: ['sh'], tty: true, env: ['TERM=dumb'] });
  assert.deepEqual(mine.filter((a) => a.startsWith('TERM=')), ['TERM=dumb']);
});

test('exec: only -i -t needs a terminal on stdin', () => {
  const cases: Array<[{ interactive?: boolean; tty?: boolean }, boolean, boolean]> = [
    [{}, false, true],
    [{ interactive: true }, false, true],
    [{ tty: true }, false, true],
    [{ interactive: true, tty: true }, true, true],
    [{ interactive: true, tty: true }, false, false],
  ];
  for (const [req, isTty, ok] of cases) {
    if (ok) checkTerminal(req, isTty);
    else assert.throws(() => checkTerminal(req, isTty), { code: 'EINVAL_ARG', message: /-i -t needs a terminal on stdin/ });
  }
});

const st = (status: ContainerRuntimeState['status']): ContainerRuntimeState => ({
  status,
  cgroupParent: 't',
  rootfs: { upper: '', work: '', merged: '', lower: '' },
});

test('status is derived from facts', () => {
  assert.equal(deriveStatus(st('running'), true, false), 'running');
  assert.equal(deriveStatus(st('running'), true, true), 'frozen');
  assert.equal(deriveStatus(st('running'), false, false), 'exited');
  assert.equal(deriveStatus(st('stopped'), false, false), 'exited');
  assert.equal(deriveStatus(st('stopped'), true, false), 'exited');
  assert.equal(deriveStatus(st('creating'), false, false), 'creating');
});

test('illegal transitions are refused', () => {
  assert.equal(refusal('exec', 'running'), undefined);
  assert.equal(refusal('exec', 'frozen'), 'it is frozen');
  assert.equal(refusal('rm', 'running'), 'it is running');
  assert.equal(refusal('rm', 'exited'), undefined);
  assert.equal(refusal('freeze', 'exited'), 'it is exited');
});

test('the supervisor gets the log policy (the default for configs from before it) and its cgroup OOM counter', () => {
  const c = planConfig({ name: 'w', image: 'b', command: ['true'], env: [], limits: {}, net: 'none', log: { maxBytes: 8192, maxFiles: 3 } }, img, new Date(0), LEGACY_PROFILE);
  const a = shimRunArgs(c, '/r', undefined, '/sys/fs/cgroup/memory/t/w/memory.oom_control');
  const opts = a.slice(0, a.indexOf('--'));
  const at = opts.indexOf('--log-max-size');
  assert.deepEqual(opts.slice(at, at + 8), [
    '--log-max-size', '8192', '--log-max-files', '3', '--oom-file', '/sys/fs/cgroup/memory/t/w/memory.oom_control', '--oom-kills-before', '0',
  ]);
  assert.deepEqual(supervisorArgs({ log: logPolicyOf({}), oomFile: undefined, oomKillsBefore: 3 }), ['--log-max-size', String(10 << 20), '--log-max-files', '2']);
  assert.deepEqual(planConfig({ name: 'w', image: 'b', command: ['true'], env: [], limits: {}, net: 'none' }, img, new Date(0), LEGACY_PROFILE).log, DEFAULT_LOG_POLICY);
});

test('OOM report: the supervisor record, else the cgroup count without a time; ps shows kills and age', () => {
  const rec = { oomKills: 3, lastOomKillAt: '2026-01-01T00:00:00.000Z' };
  assert.deepEqual(oomReport(rec, 1, undefined), { oomKills: 3, lastOomKillAt: rec.lastOomKillAt, oomKilled: false });
  assert.deepEqual(oomReport(undefined, 2, undefined), { oomKills: 2, lastOomKillAt: null, oomKilled: false });
  assert.deepEqual(oomReport(undefined, undefined, { exitCode: 0, signal: null, exitedAt: '' }), { oomKills: 0, lastOomKillAt: null, oomKilled: false });
  assert.equal(oomReport(rec, undefined, { exitCode: 137, signal: 'SIGKILL', exitedAt: '', oomKilled: true }).oomKilled, true);
  const now = Date.parse(rec.lastOomKillAt) + 65_000;
  assert.equal(oomCell(0, null, now), '-');
  assert.equal(oomCell(3, rec.lastOomKillAt, now), '3, 1m5s ago');
  assert.equal(oomCell(2, null, now), '2');
});
