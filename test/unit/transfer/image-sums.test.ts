/**
 * What CRIU reads, checked against what arrived (transfer/image-sums.ts): the
 * sums the writer takes as the images arrive, the files re-checked at rest, and
 * the sums the real tsm-streamer takes of the bytes it hands a reader (a
 * stand-in for CRIU, test/fixtures/fake-criu-restore.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { isTsmError } from '../../../src/errors/errors.js';
import { checkAtRest, checkServed, crcHex, sumFile, type ImageSum } from '../../../src/transfer/image-sums.js';
import { LiveImageWriter, liveImageStream } from '../../../src/transfer/live-images.js';
import { SERVE_SOCKET, serveImages } from '../../../src/transfer/stream-serve.js';
import { resolveTools } from '../../../src/runtime/tools.js';

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/fake-criu-restore.py');

async function tmp(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-sums-'));
  t.after(() => fs.rm(d, { recursive: true, force: true }));
  return d;
}

async function flip(file: string, at: number): Promise<void> {
  const fh = await fs.open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] = b[0]! ^ 1;
  await fh.write(b, 0, 1, at);
  await fh.close();
}

/** Images sent as records and written by the peer's writer: its sums. */
async function arrive(src: string, dst: string): Promise<ImageSum[]> {
  const w = new LiveImageWriter(dst);
  await pipeline(liveImageStream(src, Promise.resolve()), w);
  return w.sums();
}

test('checkServed: equal sums pass; a different byte, a different size or an image that never arrived fail with one line naming it', () => {
  const arrived: ImageSum[] = [{ name: 'pages-1.img', size: 10, crc32: '0000abcd' }, { name: 'core-1.img', size: 3, crc32: '12345678' }];
  checkServed([arrived[1]!, arrived[0]!, arrived[1]!], arrived);
  checkServed([], arrived);
  const fails: ImageSum[] = [
    { name: 'pages-1.img', size: 10, crc32: '0000abce' },
    { name: 'pages-1.img', size: 9, crc32: '0000abcd' },
    { name: 'inventory.img', size: 3, crc32: '12345678' },
  ];
  for (const f of fails) {
    assert.throws(() => checkServed([f], arrived), (e: unknown) => isTsmError(e, 'EINTEGRITY') && e.message.includes(f.name) && !e.message.includes('\n') && /rolled back/.test(e.fix ?? ''));
  }
});

test('the writer sums each image as it arrives, as the source has it; a byte changed at rest is found before a restore reads it', async (t) => {
  const src = await tmp(t);
  const dst = path.join(await tmp(t), 'images');
  const pages = randomBytes(3 << 20);
  await fs.writeFile(path.join(src, 'pages-1.img'), pages);
  await fs.writeFile(path.join(src, 'core-1.img'), 'core');
  await fs.writeFile(path.join(src, 'empty.img'), '');
  const sums = await arrive(src, dst);
  assert.deepEqual(
    sums.sort((a, b) => a.name.localeCompare(b.name)),
    [
      { name: 'core-1.img', size: 4, crc32: crcHex(zlib.crc32(Buffer.from('core'))) },
      { name: 'empty.img', size: 0, crc32: '00000000' },
      { name: 'pages-1.img', size: pages.length, crc32: crcHex(zlib.crc32(pages)) },
    ],
  );
  assert.deepEqual(await sumFile(path.join(src, 'pages-1.img')), sums.find((s) => s.name === 'pages-1.img'));
  await checkAtRest(dst, sums);
  await flip(path.join(dst, 'pages-1.img'), pages.length >> 1);
  await assert.rejects(checkAtRest(dst, sums), (e: unknown) => isTsmError(e, 'EINTEGRITY') && /the image pages-1\.img changed on the peer after it arrived/.test(e.message));
  await fs.rm(path.join(dst, 'core-1.img'));
  await assert.rejects(checkAtRest(dst, sums), (e: unknown) => isTsmError(e, 'EINTEGRITY') && /core-1\.img .*it is gone/.test(e.message));
});

/** The fake CRIU reading `names` through the streamer; resolves at its exit. */
function fakeRestore(dir: string, names: string[]): Promise<number | null> {
  const p = spawn('python3', [FAKE, path.join(dir, SERVE_SOCKET), ...names], { stdio: 'ignore' });
  return new Promise((resolve) => p.on('close', resolve));
}

test('the streamer sums the bytes it hands the reader: equal to the arrival sums, different after a byte changed at rest', async (t) => {
  for (const corrupt of [false, true]) {
    const src = await tmp(t);
    const dir = path.join(await tmp(t), 'images');
    const pages = randomBytes(5 << 20);
    await fs.writeFile(path.join(src, 'pages-1.img'), pages);
    await fs.writeFile(path.join(src, 'core-1.img'), randomBytes(3000));
    const sums = await arrive(src, dir);
    if (corrupt) await flip(path.join(dir, 'pages-1.img'), 4 << 20);
    const srv = await serveImages(dir, resolveTools(process.env).streamer);
    t.after(() => srv.kill());
    const criu = fakeRestore(dir, ['core-1.img', 'pages-1.img']);
    srv.manifest(sums.map((s) => [s.name, s.size] as const));
    for (const s of sums) srv.written(s.name, s.size);
    srv.end();
    assert.equal(await criu, 0);
    assert.equal(await srv.done, undefined);
    assert.deepEqual(srv.served().map((s) => s.name), ['core-1.img', 'pages-1.img']);
    if (corrupt) assert.throws(() => checkServed(srv.served(), sums), (e: unknown) => isTsmError(e, 'EINTEGRITY') && /pages-1\.img/.test(e.message));
    else checkServed(srv.served(), sums);
  }
});
