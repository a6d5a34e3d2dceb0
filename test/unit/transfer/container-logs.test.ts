import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { FileFact } from '../../../src/container/log-files.js';
import { isTsmError } from '../../../src/errors/errors.js';
import {
  checkLogParts, logsRequest, planLogsBase, planLogsTail, receiveLogs, sendLogs, type LogPlan, type LogsSent,
} from '../../../src/transfer/container-logs.js';

const policy = { maxBytes: 100, maxFiles: 2 };
const f = (name: string, ino: number, size: number): FileFact => ({ name, ino, size });

test('the first send: the kept log files, oldest first, each its newest maxBytes, and the OOM record', () => {
  const files = [f('container.log', 3, 50), f('oom.json', 9, 60), f('container.log.1', 2, 150), f('container.log.5', 1, 100)];
  assert.deepEqual(planLogsBase(files, policy), {
    replace: true,
    parts: [
      { file: 'container.log.1', from: 50, offset: 0, bytes: 100 }, // written before rotation: only its newest 100 bytes
      { file: 'container.log', from: 0, offset: 0, bytes: 50 },
      { file: 'oom.json', from: 0, offset: 0, bytes: 60 },
    ],
  });
  assert.deepEqual(planLogsBase([], policy), { replace: true, parts: [] });
  assert.deepEqual(planLogsBase([f('oom.json', 9, 5000)], policy).parts, [], 'an OOM record larger than the supervisor writes stays behind');
});

test('the send in the downtime: only what changed, everything again after a rotation', () => {
  const base = [f('container.log.1', 2, 100), f('container.log', 3, 50), f('oom.json', 9, 60)];
  const sent: LogsSent = { files: base, plan: planLogsBase(base, policy) };
  const cases: Array<{ what: string; now: FileFact[]; want: LogPlan | 'all' }> = [
    { what: 'nothing new', now: base, want: { replace: false, parts: [] } },
    { what: 'lines appended', now: [base[0]!, f('container.log', 3, 70), base[2]!], want: { replace: false, parts: [{ file: 'container.log', from: 50, offset: 50, bytes: 20 }] } },
    { what: 'a new OOM record', now: [base[0]!, base[1]!, f('oom.json', 10, 60)], want: { replace: false, parts: [{ file: 'oom.json', from: 0, offset: 0, bytes: 60 }] } },
    { what: 'rotated since', now: [f('container.log.1', 3, 95), f('container.log', 4, 10), base[2]!], want: 'all' },
    { what: 'the log was removed', now: [base[0]!, base[2]!], want: 'all' },
    { what: 'a rotated file changed', now: [f('container.log.1', 2, 99), base[1]!, base[2]!], want: 'all' },
    { what: 'growing past max-size (no supervisor rotating it)', now: [base[0]!, f('container.log', 3, 151), base[2]!], want: 'all' },
  ];
  for (const c of cases) assert.deepEqual(planLogsTail(sent, c.now, policy), c.want === 'all' ? planLogsBase(c.now, policy) : c.want, c.what);
  // a log written before rotation: its newest maxBytes went first; what follows no longer fits
  const big = [f('container.log', 7, 150)];
  const sentBig: LogsSent = { files: big, plan: planLogsBase(big, policy) };
  assert.deepEqual(planLogsTail(sentBig, [f('container.log', 7, 155)], policy), { replace: true, parts: [{ file: 'container.log', from: 55, offset: 0, bytes: 100 }] });
  // no log at the first send, one now: all of it
  assert.deepEqual(planLogsTail({ files: [], plan: planLogsBase([], policy) }, [f('container.log', 1, 5)], policy), { replace: true, parts: [{ file: 'container.log', from: 0, offset: 0, bytes: 5 }] });
});

test('the peer refuses parts beyond the log policy, naming them', () => {
  const refused = (parts: Array<{ file: string; offset: number; bytes: number }>, re: RegExp) =>
    assert.throws(() => checkLogParts({ parts }, policy), (e: unknown) => isTsmError(e, 'EPROTO') && re.test(e.message));
  refused([{ file: 'container.log.2', offset: 0, bytes: 1 }], /container\.log\.2 is not one of the 2 log files kept/);
  refused([{ file: 'container.log', offset: 90, bytes: 11 }], /grow to 101 bytes, beyond the 100/);
  refused([{ file: 'oom.json', offset: 0, bytes: 5000 }], /oom\.json of 5000 bytes/);
  refused([{ file: 'config.json', offset: 0, bytes: 1 }], /config\.json is not one of/);
  refused(new Array(4).fill({ file: 'container.log', offset: 0, bytes: 1 }), /4 parts for at most 2 log files/);
  checkLogParts({ parts: [{ file: 'container.log.1', offset: 0, bytes: 100 }, { file: 'container.log', offset: 100 - 1, bytes: 1 }, { file: 'oom.json', offset: 0, bytes: 40 }] }, policy);
});

function dirs(): { src: string; dst: string; done: () => void } {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-logs-'));
  const [src, dst] = ['src', 'dst'].map((d) => path.join(root, d)) as [string, string];
  mkdirSync(src);
  mkdirSync(dst);
  return { src, dst, done: () => rmSync(root, { recursive: true, force: true }) };
}

const contents = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((n) => [n, readFileSync(path.join(dir, n), 'utf8')]));

for (const compression of ['none', 'zstd'] as const) {
  test(`log files reach the peer as they are here, then the tail, then everything after a rotation (${compression})`, async () => {
    const { src, dst, done } = dirs();
    try {
      const p = { maxBytes: 64, maxFiles: 3 };
      writeFileSync(path.join(src, 'container.log.1'), 'a'.repeat(60) + '\n');
      writeFileSync(path.join(src, 'container.log'), 'line 1\n');
      writeFileSync(path.join(src, 'oom.json'), '{"oomKills":1,"lastOomKillAt":"2026-01-01T00:00:00.000Z"}\n');
      writeFileSync(path.join(src, 'config.json'), '{}');
      writeFileSync(path.join(dst, 'container.log.2'), 'stale, from an earlier attempt\n');
      const call = (plan: LogPlan, d: Readable) => {
        const req = logsRequest('m-0123456789', plan, compression, 'crc32');
        return receiveLogs(d.pipe(new PassThrough()), dst, req, p);
      };
      const o = { zstd: compression === 'zstd', checksum: 'crc32' as const };
      const first = await sendLogs(src, (files) => planLogsBase(files, p), call, o);
      const { 'config.json': _, ...want } = contents(src);
      assert.deepEqual(contents(dst), want, 'the first send replaces what was there');
      appendFileSync(path.join(src, 'container.log'), 'line 2\n');
      const tail = await sendLogs(src, (files) => planLogsTail(first.sent, files, p), call, o);
      assert.deepEqual(tail.sent.plan.parts, [{ file: 'container.log', from: 7, offset: 7, bytes: 7 }]);
      assert.equal(readFileSync(path.join(dst, 'container.log'), 'utf8'), 'line 1\nline 2\n');
      // as the supervisor rotates: .1 -> .2, container.log -> .1, a new container.log
      renameSync(path.join(src, 'container.log.1'), path.join(src, 'container.log.2'));
      renameSync(path.join(src, 'container.log'), path.join(src, 'container.log.1'));
      writeFileSync(path.join(src, 'container.log'), 'line 3\n');
      const again = await sendLogs(src, (files) => planLogsTail(tail.sent, files, p), call, o);
      assert.equal(again.sent.plan.replace, true);
      const { 'config.json': __, ...want2 } = contents(src);
      assert.deepEqual(contents(dst), want2);
      const nothing = await sendLogs(src, (files) => planLogsTail(again.sent, files, p), call, o);
      assert.equal(nothing.bytes, 0, 'nothing new: nothing sent');
    } finally {
      done();
    }
  });
}

test('a tail for a file the peer does not have up to its offset is refused', async () => {
  const { src, dst, done } = dirs();
  try {
    writeFileSync(path.join(src, 'container.log'), 'x');
    const req = { migrationId: 'm-0123456789', replace: false, parts: [{ file: 'container.log', offset: 10, bytes: 1 }], compression: 'none' as const };
    const data = new PassThrough();
    data.end('y');
    await assert.rejects(receiveLogs(data, dst, req, policy), (e: unknown) => isTsmError(e, 'EPROTO') && /continues at 10 bytes but has 0 here/.test(e.message));
    const short = new PassThrough();
    short.end('');
    await assert.rejects(receiveLogs(short, dst, { ...req, parts: [{ file: 'container.log', offset: 0, bytes: 3 }] }, policy), /the stream ended in container\.log/);
    const long = new PassThrough();
    long.end('abcd');
    await assert.rejects(receiveLogs(long, dst, { ...req, parts: [{ file: 'container.log', offset: 0, bytes: 3 }] }, policy), /more bytes than its parts/);
  } finally {
    done();
  }
});
