import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CriuError, criuKeyLines, explainCriuFailure, sanitiseLine } from '../../../src/criu/errors.js';
import {
  KEPT_LOG_MAX_BYTES,
  KEPT_LOGS_MAX_FILES,
  criuLogNote,
  keepCriuLog,
  keptLogName,
  keptLogsDir,
  onPeer,
  planPrune,
  tailOfLog,
} from '../../../src/criu/kept-logs.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/criu-logs');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

test('keptLogName: operation, container and time, only safe characters, sortable time', () => {
  const at = new Date('2026-12-06T05:01:02.123Z');
  assert.equal(keptLogName('dump', 'web', at, 'ab12'), 'dump-web-20261206-050102.123-ab12.log');
  assert.equal(keptLogName('cpuinfo', undefined, at, '00ff'), 'cpuinfo-20261206-050102.123-00ff.log');
  assert.equal(keptLogName('restore', '../../etc/x y', at, 'z'), 'restore-__.._etc_x_y-20261206-050102.123-z.log');
  assert.doesNotMatch(keptLogName('restore', '..', at, 'z'), /\//);
});

test('planPrune keeps the newest, deleting the oldest first', () => {
  const files = [
    { name: 'c.log', mtimeMs: 3 },
    { name: 'a.log', mtimeMs: 1 },
    { name: 'b.log', mtimeMs: 2 },
    { name: 'd.log', mtimeMs: 4 },
  ];
  assert.deepEqual(planPrune(files, 2), ['a.log', 'b.log']);
  assert.deepEqual(planPrune(files, 4), []);
  assert.deepEqual(planPrune(files, 0), ['a.log', 'b.log', 'c.log', 'd.log']);
});

test('tailOfLog: a short log whole; a long one cut to its tail at a line start, saying so, within the bound', () => {
  assert.equal(tailOfLog('a\nb\n', 100).toString(), 'a\nb\n');
  const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n') + '\n';
  const t = tailOfLog(lines, 200).toString();
  assert.ok(Buffer.byteLength(t) <= 200, `${Buffer.byteLength(t)} bytes`);
  assert.match(t, /^\[tsmigrate: the first \d+ bytes of this log were left out\]\nline \d+\n/);
  assert.ok(t.endsWith('line 99\n'));
  const cut = Number(/first (\d+) bytes/.exec(t)![1]);
  assert.equal(lines.slice(cut), t.slice(t.indexOf('\n') + 1), 'the number says exactly what was left out');
});

test('criuKeyLines: the last Error/Warn lines, harmless ones and timestamps left out', () => {
  assert.deepEqual(criuKeyLines(fixture('traced.log')), [
    'Warn (compel/src/lib/infect.c:132): Unable to interrupt task: 25677 (Operation not permitted)',
    'Error (compel/src/lib/infect.c:417): Unable to detach from 25677: No such process',
    'Error (criu/cr-dump.c:1975): Dumping FAILED.',
  ]);
  assert.deepEqual(criuKeyLines(fixture('tcp-established.log'), 2), ['Error (criu/cr-dump.c:1545): Dump files (pid: 24290) failed with -1', 'Error (criu/cr-dump.c:1975): Dumping FAILED.']);
  assert.deepEqual(criuKeyLines('no criu lines here\n'), []);
});

test('sanitiseLine: control characters and terminal escapes never reach the terminal', () => {
  assert.equal(sanitiseLine('Error (x.c:1): evil\x1b[2J\x1b]0;title\x07name\r\nmore\x00'), 'Error (x.c:1): evil ]0;title name more');
  assert.equal(sanitiseLine('x'.repeat(300)).length, 200);
  const line = criuKeyLines('(00.1) Error (criu/files.c:1): file /tmp/\x1b[31mred\x1b[0m\tname\n')[0]!;
  assert.doesNotMatch(line, /[\x00-\x1f\x7f]/);
});

test('CriuError quotes the key lines in its one-line message and names the kept log in its fix', () => {
  const e = new CriuError('dump', explainCriuFailure('dump', fixture('traced.log')), { logPath: '/r/logs/criu/dump-tr-x.log' });
  assert.match(e.message, /; CRIU logged: "Warn \(compel\/src\/lib\/infect\.c:132\): Unable to interrupt task: 25677 \(Operation not permitted\)" \| .*"Error \(criu\/cr-dump\.c:1975\): Dumping FAILED\."$/);
  assert.match(e.fix ?? '', /\(CRIU log: \/r\/logs\/criu\/dump-tr-x\.log\)$/);
  assert.equal(e.keyLines.length, 3);
  assert.ok(!e.oneLine().includes('\n'));
});

test('onPeer: a peer error names the host its CRIU log is on', () => {
  assert.equal(criuLogNote('/a/b.log'), '(CRIU log: /a/b.log)');
  assert.equal(
    onPeer('read the CRIU log for the details (CRIU log: /var/lib/tsmigrate/logs/criu/restore-x.log)', 'host-b'),
    'read the CRIU log for the details (CRIU log on host-b: /var/lib/tsmigrate/logs/criu/restore-x.log)',
  );
  assert.equal(onPeer('no log here', 'host-b'), 'no log here');
});

test(`keepCriuLog: 0600 files in a 0700 dir, each at most 1 MiB, only the newest ${KEPT_LOGS_MAX_FILES} kept`, async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-kept-'));
  try {
    const big = `${'x'.repeat(100)}\n`.repeat(Math.ceil((KEPT_LOG_MAX_BYTES * 1.5) / 101)) + '(00.1) Error (criu/cr-dump.c:1975): Dumping FAILED.\n';
    const first = await keepCriuLog({ root, op: 'dump', container: 'c0', text: big });
    assert.ok(first);
    const st = statSync(first);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(statSync(keptLogsDir(root)).mode & 0o777, 0o700);
    assert.ok(st.size <= KEPT_LOG_MAX_BYTES, `${st.size} bytes`);
    assert.match(readFileSync(first, 'utf8'), /Dumping FAILED\.\n$/, 'the end of the log, where CRIU says what failed');
    // the first is the oldest: make it so for the mtime ordering, whatever the clock's resolution
    utimesSync(first, new Date(0), new Date(0));
    const kept: string[] = [first];
    for (let i = 1; i < KEPT_LOGS_MAX_FILES + 5; i++) {
      const f = await keepCriuLog({ root, op: 'restore', container: `c${i}`, text: `log ${i}\n` });
      assert.ok(f);
      utimesSync(f, new Date(i * 1000), new Date(i * 1000));
      kept.push(f);
    }
    const left = readdirSync(keptLogsDir(root)).sort();
    assert.equal(left.length, KEPT_LOGS_MAX_FILES);
    assert.deepEqual(left, kept.slice(-KEPT_LOGS_MAX_FILES).map((f) => path.basename(f)).sort(), 'the newest stay');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('keepCriuLog returns undefined (and throws nothing) where it cannot write', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-kept-'));
  try {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, '');
    assert.equal(await keepCriuLog({ root: file, op: 'dump', text: 'x' }), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
