import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CriuError,
  explainCriuFailure,
  extractCriuErrors,
  isCriuError,
  parseCriuLogLine,
  type CriuFailureReason,
  type CriuOp,
} from '../../../src/criu/errors.js';
import { isTsmError } from '../../../src/errors/errors.js';

// compiled to dist/test/unit/criu/: the fixtures stay in the source tree
const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/criu-logs');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

const RLIMIT = "(00.141602) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted";

test('parseCriuLogLine reads the line shapes CRIU writes', () => {
  assert.deepEqual(parseCriuLogLine('(00.084218) Error (criu/file.c:123): message here'), { level: 'Error', source: 'criu/file.c:123', text: 'message here' });
  assert.deepEqual(parseCriuLogLine('(00.067199)  31366: Error (criu/files-reg.c:2175): File tmp/x has bad size 11 (expect 6)'), {
    level: 'Error',
    source: 'criu/files-reg.c:2175',
    text: 'File tmp/x has bad size 11 (expect 6)',
    pid: 31366,
  });
  assert.deepEqual(parseCriuLogLine('Error (criu/util.c:642): execvp("iptables-restore", ...) failed: No such file or directory'), {
    level: 'Error',
    source: 'criu/util.c:642',
    text: 'execvp("iptables-restore", ...) failed: No such file or directory',
  });
  assert.equal(parseCriuLogLine('(00.111777) Warn  (compel/src/lib/infect.c:132): Unable to interrupt task: 25677 (Operation not permitted)')?.level, 'Warn');
  assert.equal(parseCriuLogLine('Warn  (criu/kerndat.c:1799): Hardware breakpoints don\'t seem to work (status=137f)')?.level, 'Warn');
  for (const l of ['', '(00.176272) inet: Dumping inet socket at 3', 'pie: 24290: Daemon waits for command', 'Errors were found', '(00.1) Errorless (x)']) {
    assert.equal(parseCriuLogLine(l), null, l);
  }
});

test('extractCriuErrors: context, harmless lines, de-duplication, bound', () => {
  const log = [
    '(00.000000) CRIU run id = x',
    RLIMIT,
    '(00.100000) a',
    '(00.100001) ',
    '(00.100002) b',
    '(00.100003) Error (criu/x.c:1): first',
    '(00.100004) c',
    '(00.100005) Error (criu/x.c:2): second',
    '(00.100006) Error (criu/x.c:1): first',
    '(00.100007) d',
    '(00.100008) Error (criu/x.c:3): third',
  ].join('\n');
  assert.deepEqual(extractCriuErrors(log), [
    '(00.100000) a\n(00.100002) b\n(00.100003) Error (criu/x.c:1): first',
    '(00.100004) c\n(00.100005) Error (criu/x.c:2): second',
    '(00.100007) d\n(00.100008) Error (criu/x.c:3): third',
  ]);
  assert.deepEqual(extractCriuErrors(log, 0), ['(00.100003) Error (criu/x.c:1): first', '(00.100005) Error (criu/x.c:2): second', '(00.100008) Error (criu/x.c:3): third']);
  assert.deepEqual(extractCriuErrors(`${RLIMIT}\n(00.2) Dumping finished successfully\n`), [], 'only the harmless rlimit error');
  assert.deepEqual(extractCriuErrors(''), []);
  const many = Array.from({ length: 30 }, (_, i) => `(00.${i}) Error (criu/y.c:${i}): e${i}`).join('\n');
  assert.equal(extractCriuErrors(many).length, 8);
  // the same error with other timestamps/pids counts once
  const dup = ['(00.1)  12: Error (criu/z.c:9): same', '(00.2)  13: Error (criu/z.c:9): same', 'Error (criu/z.c:9): same'].join('\n');
  assert.equal(extractCriuErrors(dup).length, 1);
});

test('extractCriuErrors on a real log keeps the cause and drops the rlimit line', () => {
  const errs = extractCriuErrors(fixture('tcp-established.log'));
  assert.ok(errs.length >= 2, errs.join('\n---\n'));
  assert.ok(errs.every((e) => !e.includes('RLIMIT_NOFILE')));
  assert.match(errs[0] ?? '', /Searching for socket[^\n]*\n[^\n]*Connected TCP socket, consider using --tcp-established/);
  assert.match(errs.at(-1) ?? '', /Dumping FAILED/);
});

// every fixture, its operation and the reason it must map to
const CASES: Array<{ file: string; op: CriuOp; reason: CriuFailureReason; message: RegExp; fix: RegExp }> = [
  { file: 'tcp-established.log', op: 'dump', reason: 'tcp-established', message: /established TCP connection/, fix: /--tcp-established/ },
  { file: 'tcp-established-restore.log', op: 'restore', reason: 'tcp-established', message: /established TCP connections/, fix: /--tcp-established.*--tcp-close/ },
  { file: 'external-unix-socket.log', op: 'dump', reason: 'external-unix-socket', message: /unix socket \/tmp\/crx\/u\.sock outside it/, fix: /close that connection/ },
  { file: 'device.log', op: 'dump', reason: 'device', message: /process 24940 holds a character device 10:237 open \(fd 3\)/, fix: /close the device.*\/proc\/24940\/fd\/3/ },
  { file: 'device-tun.log', op: 'dump', reason: 'device', message: /\/dev\/net\/tun/, fix: /close \/dev\/net\/tun/ },
  { file: 'traced.log', op: 'dump', reason: 'traced', message: /process 25677 is being traced.*debugger or strace/, fix: /stop strace/ },
  { file: 'pid-in-use.log', op: 'restore', reason: 'pid-in-use', message: /PID 31851 is already taken.*restored twice/, fix: /stop the copy that is already running/ },
  { file: 'iptables-missing.log', op: 'dump', reason: 'iptables-missing', message: /could not run iptables-restore/, fix: /apt-get install iptables/ },
  { file: 'iptables-missing-restore.log', op: 'restore', reason: 'iptables-missing', message: /could not run iptables-restore.*firewall rules/, fix: /apt-get install iptables/ },
  { file: 'file-changed.log', op: 'restore', reason: 'file-changed', message: /^\/tmp\/crx\/bs\/held\.txt, which the container held open, was changed.*size now 11, 6 at the checkpoint/, fix: /inside its rootfs/ },
  { file: 'file-changed-mode.log', op: 'restore', reason: 'file-changed', message: /held\.txt.*mode now 0100600, 0100644 at the checkpoint/, fix: /upper layer/ },
  { file: 'kernel-feature.log', op: 'dump', reason: 'kernel-feature', message: /no soft-dirty memory tracking/, fix: /plain checkpoint/ },
  { file: 'kernel-feature-predump.log', op: 'pre-dump', reason: 'kernel-feature', message: /BUG at criu\/mem\.c:46.*soft-dirty/, fix: /plain checkpoint/ },
  { file: 'terminal-ctty.log', op: 'dump', reason: 'terminal-held', message: /holds \/dev\/tty open/, fix: /bash|without -t/ },
  { file: 'shell-job.log', op: 'dump', reason: 'shell-job', message: /process 479 does not lead its own session/, fix: /setsid/ },
  { file: 'no-process.log', op: 'dump', reason: 'no-process', message: /process 999999 does not exist/, fix: /still running/ },
  { file: 'criu-too-old.log', op: 'restore', reason: 'criu-too-old', message: /newer CRIU.*images version 9/, fix: /CRIU 4\.2/ },
  { file: 'criu-too-old-option.log', op: 'dump', reason: 'criu-too-old', message: /does not know the option --lazy-pages-x/, fix: /CRIU 4\.2/ },
  { file: 'cpu-mismatch.log', op: 'cpuinfo', reason: 'cpu-mismatch', message: /CPU lacks features.*xfeatures has unsupported bits/, fix: /same CPU model/ },
];

test('explainCriuFailure maps every real CRIU log fixture', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.log'));
  assert.deepEqual(files.sort(), CASES.map((c) => c.file).sort(), 'every fixture has a case');
  for (const c of CASES) {
    const x = explainCriuFailure(c.op, fixture(c.file));
    assert.equal(x.reason, c.reason, `${c.file}: ${x.message}`);
    assert.match(x.message, c.message, c.file);
    assert.match(x.fix, c.fix, c.file);
    for (const s of [x.message, x.fix]) assert.ok(!/[\r\n]/.test(s) && s.length > 10 && s.length <= 400, `${c.file}: one line: ${s}`);
    assert.ok(x.excerpt.length > 0 && x.excerpt.length <= 20, `${c.file}: excerpt`);
    assert.ok(x.excerpt.every((l) => !l.includes('RLIMIT_NOFILE')), `${c.file}: no rlimit noise`);
  }
});

test('explainCriuFailure quotes the cause line in the excerpt', () => {
  assert.ok(explainCriuFailure('dump', fixture('traced.log')).excerpt.some((l) => /Unable to interrupt task: 25677 \(Operation not permitted\)/.test(l)));
  assert.ok(explainCriuFailure('restore', fixture('file-changed.log')).excerpt.some((l) => /has bad size 11/.test(l)));
  assert.ok(explainCriuFailure('dump', fixture('device.log')).excerpt.some((l) => /Can't dump file 3 of that type/.test(l)));
});

test('explainCriuFailure: message variants from CRIU sources and other versions', () => {
  const table: Array<[CriuOp, string, CriuFailureReason]> = [
    ['dump', '(00.1) Error (criu/sk-unix.c:600): sk unix: Can\'t dump external socket 1234', 'external-unix-socket'],
    ['dump', "(00.1) Error (criu/files.c:10): Can't handle non-regular char device 4:64", 'device'],
    ['dump', '(00.1) Error (criu/seize.c:10): Unable to seize 77: Operation not permitted', 'traced'],
    ['dump', '(00.1) Error (criu/seize.c:10): Task 77 is being traced', 'traced'],
    ['restore', '(00.1) Error (criu/cr-restore.c:1): PID 300 is busy', 'pid-in-use'],
    ['restore', '(00.1)   5: Error (criu/cr-restore.c:1): Pid 300 do not match expected 301', 'pid-in-use'],
    ['restore', "(00.1) Error (criu/net.c:1): Can't create iptables rules", 'iptables-missing'],
    ['dump', '(00.1) Error (criu/net.c:1): net: iptables-restore: not found', 'iptables-missing'],
    ['restore', '(00.1)  9: Error (criu/files-reg.c:1): File var/log/x has bad mtime 1700000000 (expect 1600000000)', 'file-changed'],
    ['restore', '(00.1)  9: Error (criu/arch/x86/cpu.c:1): cpu: CPU instructions set is not compatible', 'cpu-mismatch'],
    ['dump', "(00.1) Error (criu/kerndat.c:1): The kernel doesn't support PTRACE_GETSIGMASK", 'kernel-feature'],
    ['check', '(00.1) Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.', 'kernel-feature'],
    ['check', 'Error (criu/cr-check.c:1901): Unknown feature lazy_pages', 'criu-too-old'],
  ];
  for (const [op, text, want] of table) {
    const x = explainCriuFailure(op, `(00.000000) CRIU run id = x\n${RLIMIT}\n${text}\n`);
    assert.equal(x.reason, want, `${text} -> ${x.reason}: ${x.message}`);
    assert.ok(!/\n/.test(x.message) && !/\n/.test(x.fix));
  }
});

test('explainCriuFailure: unknown failures quote the first real error', () => {
  const log = [
    RLIMIT,
    "(00.5) Error (criu/mount.c:77): mnt: Mount 123 ./data (master_id: 0 shared_id: 5) is not reachable",
    '(00.6) Error (criu/cr-dump.c:1545): Dump files (pid: 12) failed with -1',
    '(00.7) Error (criu/cr-dump.c:1975): Dumping FAILED.',
  ].join('\n');
  const x = explainCriuFailure('dump', log);
  assert.equal(x.reason, 'unknown');
  assert.equal(x.message, 'CRIU says: mnt: Mount 123 ./data (master_id: 0 shared_id: 5) is not reachable (and 2 more errors)');
  assert.match(x.fix, /CRIU log/);
  assert.ok(x.excerpt.some((l) => l.includes('is not reachable')));

  const only = explainCriuFailure('restore', '(00.1) Error (criu/cr-restore.c:2331): Restoring FAILED.\n');
  assert.equal(only.reason, 'unknown');
  assert.equal(only.message, 'CRIU says: Restoring FAILED.');

  const none = explainCriuFailure('dump', `${RLIMIT}\n(00.2) Dumping pstree\n`);
  assert.equal(none.reason, 'unknown');
  assert.match(none.message, /logged no error.*Dumping pstree/);
  assert.equal(explainCriuFailure('dump', '').message, 'CRIU logged no error');

  // a huge line stays one bounded line
  const long = explainCriuFailure('dump', `(00.1) Error (criu/x.c:1): ${'x'.repeat(5000)}\n`);
  assert.ok(long.message.length <= 400 && long.excerpt.every((l) => l.length <= 400));
});

test('no false positives from harmless lines of successful runs', () => {
  const ok = [
    '(00.000211) Version: 4.2.1 (gitid 0)',
    "(00.140035) Warn  (criu/kerndat.c:1799): Hardware breakpoints don't seem to work (status=137f)",
    RLIMIT,
    '(00.180879) Warn  (compel/arch/x86/src/lib/infect.c:419): Will restore 24114 with interrupted system call',
    '(00.202127) Dumping finished successfully',
  ].join('\n');
  assert.equal(explainCriuFailure('dump', ok).reason, 'unknown');
});

test('CriuError is a one-line ECRIU TsmError that keeps reason, excerpt and log path', () => {
  const x = explainCriuFailure('dump', fixture('device.log'));
  const e = new CriuError('dump', x, { logPath: '/ck/images/dump.log', exitCode: 1 });
  assert.ok(isTsmError(e, 'ECRIU'));
  assert.ok(isCriuError(e as unknown, 'device'));
  assert.ok(!isCriuError(e as unknown, 'traced'));
  assert.equal(e.reason, 'device');
  assert.equal(e.logPath, '/ck/images/dump.log');
  assert.equal(e.exitCode, 1);
  assert.match(e.message, /^criu dump failed: process 24940 holds a character device/);
  assert.match(e.fix ?? '', /\(CRIU log: \/ck\/images\/dump\.log\)$/);
  assert.ok(!e.oneLine().includes('\n'));
  assert.deepEqual(e.excerpt, x.excerpt);
});
