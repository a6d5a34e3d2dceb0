/**
 * Extraction that cannot be steered (issue 16, findings 2 and 4), against real
 * tar and zstd streams built here: limits checked from the headers before
 * anything is written, decompression bounded while it streams (memory and
 * bytes), and paths resolved beneath the target's descriptor, so that a
 * directory swapped for a symlink between two entries is not followed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip, gzipSync } from 'node:zlib';
import { inflateZstd, ratioGuard } from '../../../src/archive/inflate.js';
import { declaredOf, limitsFor, PRESETS } from '../../../src/archive/limits.js';
import { unpackFileToTree } from '../../../src/archive/pack.js';
import { extractTar } from '../../../src/archive/safe-extract.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { bufferOf, GiB, MiB, tarOf, zstdOf, type Entry } from '../../helpers/bombs.js';

const temps: string[] = [];
after(async () => {
  for (const t of temps) await fs.rm(t, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(tmpdir(), 'tsm-limits-'));
  temps.push(d);
  return d;
}

/** Bytes of regular files under `dir`. */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

/** Run `fn` and report the highest RSS growth seen while it ran (sampled every 5 ms). */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; growth: number; ms: number }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t0 = performance.now();
  const [result] = await Promise.allSettled([fn()]);
  const ms = performance.now() - t0;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  return { result, growth: peak - base, ms };
}

const refused = (re: RegExp) => (e: unknown) => isTsmError(e, 'EINVAL_ARG') && re.test(e.message) && !e.message.includes('\n') && Boolean(e.fix);

test('a zstd bomb (1.5 GiB of zeros in ~50 KB) stops at the cap with bounded memory', async () => {
  const bomb = await zstdOf(tarOf([{ name: 'pages-1.img', body: { zeros: 1.5 * GiB } }]));
  assert.ok(bomb.length < 100 * 1024, `the bomb is ${bomb.length} bytes`);
  const inf = inflateZstd({ maxBytes: 64 * MiB, maxRatio: 1024, ratioSlack: 64 * MiB }, 'the test stream');
  let seen = 0;
  const sink = new Writable({ write: (c: Buffer, _e, cb) => ((seen += c.length), cb()) });
  const r = await peakRss(() => pipeline(Readable.from([bomb]), inf, sink));
  assert.equal(r.result.status, 'rejected');
  assert.ok(refused(/refused the test stream: it expands to more than 67108864 bytes/)((r.result as PromiseRejectedResult).reason));
  assert.ok(seen <= 64 * MiB, `handed on ${seen} bytes`);
  assert.ok(inf.bytesOut <= 64 * MiB);
  assert.ok(r.growth < 128 * MiB, `RSS grew ${(r.growth / MiB).toFixed(0)} MiB`);
  assert.ok(r.ms < 5000, `${r.ms} ms`);
});

test('the ratio is asked past the slack: a bomb under the byte cap is refused by its ratio', async () => {
  const bomb = await zstdOf(Readable.from([Buffer.alloc(32 * MiB)]));
  const inf = inflateZstd({ maxBytes: GiB, maxRatio: 100, ratioSlack: 4 * MiB }, 'the test stream');
  await assert.rejects(pipeline(Readable.from([bomb]), inf, new Writable({ write: (_c, _e, cb) => cb() })), refused(/expands more than 100 times/));
  assert.ok(inf.bytesOut <= 4 * MiB + 128 * 1024, `handed on ${inf.bytesOut}`);
});

test('a criu.tar.zst bomb declaring a small tar is refused from its header: nothing of it is written', async () => {
  const dir = await tmp();
  const file = path.join(dir, 'criu.tar.zst');
  await fs.writeFile(file, await zstdOf(tarOf([{ name: 'inventory.img', body: 'x' }, { name: 'pages-1.img', body: { zeros: 1.5 * GiB } }])));
  const target = path.join(dir, 'images');
  // what restore.ts asks of a blob whose manifest says 1 MiB and 3 entries
  const l = limitsFor('criu-images', declaredOf({ tarBytes: MiB, entries: 3 }));
  const r = await peakRss(() => unpackFileToTree(file, target, { refuseDevices: true, limits: l.tar, inflate: l.inflate, what: 'the images' }));
  assert.equal(r.result.status, 'rejected');
  assert.ok(refused(/refused the images: it expands to more than 1048576 bytes/)((r.result as PromiseRejectedResult).reason));
  assert.equal(existsSync(path.join(target, 'pages-1.img')), false);
  assert.ok(bytesUnder(target) <= 1, 'only the small entry');
  assert.ok(r.growth < 128 * MiB, `RSS grew ${(r.growth / MiB).toFixed(0)} MiB`);
  assert.ok(r.ms < 3000, `${r.ms} ms`);
});

test('an entry flood stops at the entry limit, long before the archive ends', async () => {
  const target = await tmp();
  let made = 0;
  function* flood(): Generator<Entry> {
    for (let i = 0; i < 1_000_000; i++) {
      made++;
      yield { name: `f${i}`, body: '' };
    }
  }
  const t0 = performance.now();
  await assert.rejects(
    extractTar(tarOf(flood()), target, { limits: { ...PRESETS.upper.tar, maxEntries: 1000 }, what: 'the flood' }),
    refused(/refused the flood: it has more than 1000 entries/),
  );
  const ms = performance.now() - t0;
  assert.ok(readdirSync(target).length <= 1000, `${readdirSync(target).length} files written`);
  assert.ok(made < 20_000, `the archive was read up to entry ${made}`);
  assert.ok(ms < 5000, `${ms} ms`);
});

test('a path deeper than the limit is refused before any of its directories is made', async () => {
  const target = await tmp();
  const deep = `${'d/'.repeat(PRESETS.upper.tar.maxDepth)}f`;
  await assert.rejects(extractTar(tarOf([{ name: deep, body: 'x' }]), target), refused(/257 directories deep \(at most 256\)/));
  assert.deepEqual(readdirSync(target), []);
});

test('a directory swapped for a symlink between two entries is not followed (resolved beneath the target)', async () => {
  const base = await tmp();
  const target = path.join(base, 'target');
  const outside = path.join(base, 'outside');
  await fs.mkdir(target);
  await fs.mkdir(outside);
  const tarBuf = await bufferOf(tarOf([{ name: 'd/', type: 'directory', mode: 0o755 }, { name: 'd/f', body: 'written through the swapped link' }]));
  const input = new PassThrough();
  const run = extractTar(input, target);
  run.catch(() => undefined);
  input.write(tarBuf.subarray(0, 512)); // the directory entry only
  for (let i = 0; i < 400 && !existsSync(path.join(target, 'd')); i++) await sleep(5);
  assert.ok(existsSync(path.join(target, 'd')));
  // another process (a container sharing the tree) swaps it
  await fs.rmdir(path.join(target, 'd'));
  await fs.symlink(outside, path.join(target, 'd'));
  input.end(tarBuf.subarray(512));
  await assert.rejects(run, refused(/unsafe archive: entry "d\/f" goes through a symlink/));
  assert.deepEqual(readdirSync(outside), [], 'nothing was written outside');
});

test('a symlink entry followed by a file through it, and a hard link through it, are refused; outside is untouched', async () => {
  const base = await tmp();
  const target = path.join(base, 'target');
  const outside = path.join(base, 'outside');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'victim'), 'victim\n', { mode: 0o644 });
  for (const second of [{ name: 'l/victim', body: 'overwritten' }, { name: 'l/new', type: 'link' as const, linkname: 'a' }]) {
    await fs.rm(target, { recursive: true, force: true });
    await assert.rejects(
      extractTar(tarOf([{ name: 'a', body: 'a' }, { name: 'l', type: 'symlink', linkname: outside }, second]), target),
      refused(/unsafe archive: entry "l\/(victim|new)" goes through the symlink "l"/),
    );
    assert.equal(await fs.readFile(path.join(outside, 'victim'), 'utf8'), 'victim\n');
    assert.deepEqual(readdirSync(outside), ['victim']);
  }
});

test('only: named regular files at the top, anything else refused before it is written', async () => {
  const only = new Map([['dump.log', 10], ['manifest.json', 100]]);
  const rows: Array<[Entry[], RegExp]> = [
    [[{ name: 'dump.log', type: 'symlink', linkname: '/etc/shadow' }], /entry "dump.log" is a symlink, not a regular file/],
    [[{ name: 'manifest.json', type: 'directory' }], /entry "manifest.json" is a directory, not a regular file/],
    [[{ name: 'dump.log', type: 'link', linkname: 'manifest.json' }], /entry "dump.log" is a link, not a regular file/],
    [[{ name: 'sub/dump.log', body: 'x' }], /entry "sub\/dump.log" is not one of dump.log, manifest.json/],
    [[{ name: 'evil', body: 'x' }], /entry "evil" is not one of/],
    [[{ name: 'dump.log', body: 'x'.repeat(11) }], /refused the archive: it declares "dump.log" of 11 bytes \(at most 10\)/],
  ];
  for (const [entries, want] of rows) {
    const target = await tmp();
    await assert.rejects(extractTar(tarOf([{ name: './', type: 'directory' }, ...entries]), target, { only }), refused(want), want.source);
    assert.deepEqual(readdirSync(target), [], want.source);
  }
  const ok = await tmp();
  const r = await extractTar(tarOf([{ name: './', type: 'directory', mode: 0o700 }, { name: './dump.log', body: 'x'.repeat(10) }, { name: 'manifest.json', body: '{}' }]), ok, { only });
  assert.equal(r.entries, 3);
  assert.deepEqual(readdirSync(ok).sort(), ['dump.log', 'manifest.json']);
});

test('a gzip bomb (an image tarball) is stopped by the guard after gunzip', async () => {
  const gz = gzipSync(Buffer.alloc(64 * MiB));
  const { count, guard } = ratioGuard({ maxBytes: GiB, maxRatio: 100, ratioSlack: 8 * MiB }, 'the image x.tar.gz');
  let seen = 0;
  await assert.rejects(
    pipeline(Readable.from([gz]), count, createGunzip(), guard, new Writable({ write: (c: Buffer, _e, cb) => ((seen += c.length), cb()) })),
    refused(/refused the image x.tar.gz: it expands more than 100 times/),
  );
  assert.ok(seen <= 8 * MiB, `handed on ${seen}`);
});
