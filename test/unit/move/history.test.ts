import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { historyRow } from '../../../src/cli/commands/move.js';
import { TsmError } from '../../../src/errors/errors.js';
import { failedMoveOutcome, historyFile, parseHistoryLine, pastMoves, readHistory, reasonOf, recordFailedMove, recordMove, recordRecovery } from '../../../src/move/history.js';
import type { MoveReport } from '../../../src/move/report.js';
import { statePaths } from '../../../src/state/paths.js';

const report = (id: string): MoveReport => ({
  id, name: 'web', host: 'b', epoch: 2,
  downtime: { freezeMs: 1, dumpMs: 20, transferMs: 30, restoreMs: 40, resumeMs: 2, totalMs: 93 },
  estimate: { dumpMs: 20, transferMs: 30, restoreMs: 40, fixedMs: 3, totalMs: 93 },
  maxDowntimeMs: null,
  restoreParts: { setupMs: 5, criuMs: 30, duringTransfer: true },
  preCopy: 'not available',
  warmMemory: { sourceBytes: 0, peerBytes: 0, peerPoolBytes: 0, ms: 0 },
  images: { via: 'files' },
  compression: { used: false, linkMBps: 100, linkZstdMBps: 90, zstdMBps: 500, ratio: 1 },
  bytes: { upperBase: 10, upperDelta: 0, images: 2048, imagesTar: 2048, image: 0, logs: 0 },
  tcpEstablished: true,
  carried: { tcpEstablished: true, fileLocks: false },
  network: { ip: null, keptIp: false },
  totalMs: 900,
  at: '2026-12-06T05:00:00.000Z',
});

function withRoot(fn: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'tsm-hist-'));
    try {
      await fn(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test('failedMoveOutcome: from the phase the journal reached, whether the peer began, an interrupt', () => {
  const rows: Array<[Parameters<typeof failedMoveOutcome>[0], string]> = [
    // given up before the peer began to receive it: a refusal (pre-flight, the downtime estimate, the connection)
    [{ phase: 'aborted', begun: false, interrupted: false }, 'refused'],
    [{ phase: 'abort-pending', begun: false, interrupted: false }, 'refused'],
    // an interrupt is no refusal
    [{ phase: 'aborted', begun: false, interrupted: true }, 'rolled-back'],
    [{ phase: 'aborted', begun: true, interrupted: false }, 'rolled-back'],
    [{ phase: 'abort-pending', begun: true, interrupted: false }, 'rolled-back'],
    [{ phase: 'aborted', begun: true, interrupted: true }, 'rolled-back'],
    // decided, then the peer gave its copy up: rolled back too
    // unfinished: for recover
    [{ phase: 'decided', begun: true, interrupted: false }, 'failed'],
    [{ phase: 'frozen', begun: true, interrupted: false }, 'failed'],
    [{ phase: 'started', begun: false, interrupted: false }, 'failed'],
    // committed, the clean-up failed: it runs on the peer
    [{ phase: 'committed', begun: true, interrupted: false }, 'committed'],
  ];
  for (const [f, want] of rows) assert.equal(failedMoveOutcome(f), want, JSON.stringify(f));
});

test('recordRecovery: a line only for a recovery that finished the move, saying which way', withRoot(async (root) => {
  const p = statePaths(root);
  const m = { id: 'm1', name: 'web', host: 'b' };
  const what = { action: 'rolled back', detail: 'b removed its copy; the container runs here' };
  assert.equal(await recordRecovery(p, m, 'frozen', 'abort-pending', what), false, 'the peer still has to be told');
  assert.equal(await recordRecovery(p, m, 'aborted', 'aborted', what), false, 'nothing done');
  assert.equal(await recordRecovery(p, m, 'abort-pending', 'aborted', what), true);
  assert.equal(await recordRecovery(p, { ...m, id: 'm2' }, 'decided', 'done', { action: 'completed', detail: 'the container runs on b' }), true);
  const h = await readHistory(p);
  assert.deepEqual(h.map((e) => [e.id, e.outcome, e.finished, e.reason]), [
    ['m1', 'recovered', 'rolled-back', 'rolled back by recover: b removed its copy; the container runs here'],
    ['m2', 'recovered', 'committed', 'completed by recover: the container runs on b'],
  ]);
}));

test('reasonOf: the error and its fix on one line, control characters out', () => {
  assert.equal(reasonOf(new TsmError('EPEER', 'lost\nthe peer', { fix: 'retry' })), 'lost the peer; retry');
  assert.equal(reasonOf(new Error('plain\x1b[31m')), 'plain [31m');
  assert.equal(reasonOf('x'.repeat(5000)).length, 1000);
});

test('parseHistoryLine: entries, old bare reports as committed, nonsense as null', () => {
  const r = report('m1');
  assert.deepEqual(parseHistoryLine(JSON.stringify(r)), { id: 'm1', name: 'web', host: 'b', outcome: 'committed', report: r, at: r.at });
  assert.deepEqual(parseHistoryLine(JSON.stringify({ id: 'm2', name: 'web', host: 'b', outcome: 'rolled-back', reason: 'interrupted', at: 'T' })), {
    id: 'm2', name: 'web', host: 'b', outcome: 'rolled-back', reason: 'interrupted', at: 'T',
  });
  assert.deepEqual(parseHistoryLine(JSON.stringify({ id: 'm3', name: 'w', host: 'b', outcome: 'recovered', finished: 'committed', at: 'T' })), {
    id: 'm3', name: 'w', host: 'b', outcome: 'recovered', finished: 'committed', at: 'T',
  });
  for (const bad of ['{"id":"m', '[]', '{"id":"m","name":"w","host":"b","outcome":"exploded","at":"T"}', '{"id":"m","name":"w","host":"b","at":"T"}', 'null']) {
    assert.equal(parseHistoryLine(bad), null, bad);
  }
});

test('recordMove and readHistory: written 0600, read back in order with the old lines, torn lines skipped', withRoot(async (root) => {
  const p = statePaths(root);
  mkdirSync(path.dirname(historyFile(p)), { recursive: true });
  appendFileSync(historyFile(p), JSON.stringify(report('old')) + '\n', { mode: 0o600 });
  assert.equal(await recordMove(p, { id: 'm1', name: 'web', host: 'b', outcome: 'committed', report: report('m1'), at: 'T1' }), true);
  appendFileSync(historyFile(p), '{"id":"torn","na');
  appendFileSync(historyFile(p), '\n');
  await recordFailedMove(p, { id: 'm2', name: 'web', host: 'b' }, new TsmError('EINTERRUPTED', 'interrupted', { fix: 'run it again' }), { phase: 'aborted', begun: true, interrupted: true });
  await recordFailedMove(p, { id: 'm3', name: 'web', host: 'b' }, new TsmError('EPREFLIGHT', 'b cannot take "web": a container named "web" already exists on the peer', { fix: 'rm it' }), { phase: 'aborted', begun: false, interrupted: false });
  await recordMove(p, { id: 'm4', name: 'web', host: 'b', outcome: 'recovered', finished: 'rolled-back', reason: 'rolled back by recover', at: 'T4' });
  assert.equal(statSync(historyFile(p)).mode & 0o777, 0o600);
  const h = await readHistory(p);
  assert.deepEqual(h.map((e) => [e.id, e.outcome]), [['old', 'committed'], ['m1', 'committed'], ['m2', 'rolled-back'], ['m3', 'refused'], ['m4', 'recovered']]);
  assert.equal(h[2]!.reason, 'interrupted; run it again');
  assert.match(h[3]!.reason!, /already exists on the peer; rm it$/);
  assert.equal(h[0]!.report!.downtime.totalMs, 93);
  assert.equal(readFileSync(historyFile(p), 'utf8').split('\n').filter(Boolean).length, 6);
  // the downtime estimate learns from the committed moves only, old lines included
  assert.equal((await pastMoves(p)).length, 2);
}));

test('recordMove never throws: it says it could not write', withRoot(async (root) => {
  const file = path.join(root, 'a-file');
  appendFileSync(file, '');
  assert.equal(await recordMove(statePaths(file), { id: 'x', name: 'w', host: 'b', outcome: 'refused', at: 'T' }), false);
}));

test('history rows: the figures of a committed move, the outcome and reason of the others', () => {
  const c = historyRow({ id: 'm1', name: 'web', host: 'b', outcome: 'committed', report: report('m1'), at: 'T1' });
  assert.deepEqual(c, ['T1', 'm1', 'web', 'b', 'committed', '93ms', '1', '20', '30', '40', '2', '2.0KiB', 'no', '']);
  const r = historyRow({ id: 'm2', name: 'web', host: 'b', outcome: 'rolled-back', reason: 'interrupted', at: 'T2' });
  assert.deepEqual([r[4], r[5], r.at(-1)], ['rolled-back', '-', 'interrupted']);
  assert.equal(historyRow({ id: 'm3', name: 'web', host: 'b', outcome: 'recovered', finished: 'committed', at: 'T3' })[4], 'recovered (committed)');
});
