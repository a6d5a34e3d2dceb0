/**
 * tsm-streamer serve (native/streamer/serve.c) driven by a stand-in for CRIU's
 * restore side of the image-streamer protocol (test/fixtures/fake-criu-restore.py).
 * The real CRIU drives it in the move tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVE_SOCKET, serveImages } from '../../../src/transfer/stream-serve.js';
import { resolveTools } from '../../../src/runtime/tools.js';

const { streamer } = resolveTools(process.env);

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/fake-criu-restore.py');

/** The fake CRIU asking for `names`; its output lines as they come, and its exit. */
function fakeRestore(dir: string, names: string[]) {
  const p = spawn('python3', [FAKE, path.join(dir, SERVE_SOCKET), ...names], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
  p.stderr.on('data', (d) => (err += d));
  const exit = new Promise<{ code: number | null; err: string }>((resolve) => p.on('close', (code) => resolve({ code, err })));
  return { lines, exit, kill: () => p.kill('SIGKILL') };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), what);
};

test('serve: a request waits for the manifest; images are handed over as far as written, the rest as it comes; unknown names do not exist', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-serve-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const srv = await serveImages(dir, streamer);
  t.after(() => srv.kill());
  assert.equal(statSync(path.join(dir, SERVE_SOCKET)).mode & 0o077, 0);
  const core = Buffer.from('core image');
  const pages = randomBytes(5 << 20);
  await fs.writeFile(path.join(dir, 'core-1.img'), core);
  const criu = fakeRestore(dir, ['inventory.img', 'core-1.img', 'empty.img', 'pages-1.img']);
  // no manifest yet: nothing is answered (inventory.img is unknown until then)
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(criu.lines, []);
  srv.manifest([['core-1.img', core.length], ['empty.img', 0], ['pages-1.img', pages.length]]);
  srv.written('core-1.img', core.length);
  await until(() => criu.lines.length >= 3, 'the small images are served at the manifest');
  assert.deepEqual(criu.lines, ['inventory.img missing', `core-1.img ${core.length} ${sha(core)}`, `empty.img 0 ${sha(Buffer.alloc(0))}`]);
  // the pages, written in steps while "CRIU" waits on its pipe
  const fh = await fs.open(path.join(dir, 'pages-1.img'), 'w');
  for (let off = 0; off < pages.length; ) {
    const n = Math.min(pages.length - off, 700_000);
    await fh.write(pages, off, n, off);
    off += n;
    srv.written('pages-1.img', off);
    await new Promise((r) => setTimeout(r, 5));
  }
  await fh.close();
  srv.end();
  const { code, err } = await criu.exit;
  assert.equal(code, 0, err);
  assert.deepEqual(criu.lines.at(-1), `pages-1.img ${pages.length} ${sha(pages)}`);
  assert.equal(await srv.done, undefined);
  assert.throws(() => statSync(path.join(dir, SERVE_SOCKET)), /ENOENT/, 'the socket is gone once CRIU connected');
});

test('serve: the transfer ending before the images are whole stops the streamer, and the reader sees the image cut short', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-serve-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const srv = await serveImages(dir, streamer);
  t.after(() => srv.kill());
  const pages = randomBytes(3 << 20);
  await fs.writeFile(path.join(dir, 'pages-1.img'), pages.subarray(0, 1 << 20));
  const criu = fakeRestore(dir, ['pages-1.img']);
  srv.manifest([['pages-1.img', pages.length]]);
  srv.written('pages-1.img', 1 << 20);
  srv.end();
  assert.match((await srv.done) ?? '', /stopped arriving before they were whole/);
  await criu.exit;
  // the fake prints what it got: a first MiB at most, never the whole image
  assert.ok(!criu.lines.includes(`pages-1.img ${pages.length} ${sha(pages)}`), criu.lines.join('; '));
  assert.ok(criu.lines.every((l) => !l.startsWith('pages-1.img') || Number(l.split(' ')[1]) <= 1 << 20), criu.lines.join('; '));
});

test('serve: control lines that name a file outside the manifest, grow one past its size or carry a path stop it with a reason', async (t) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-serve-'));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const cases: Array<[string, RegExp]> = [
    ['f 4 a.img\nm\na 5 nope.img\n', /nope\.img is not in the manifest/],
    ['f 4 a.img\nm\na 10 a.img\n', /a\.img: 10 bytes written, after 0 of 4/],
    ['f 1 ../x\n', /bad image name/],
    ['f 4 a.img\nf 4 a.img\n', /twice in the manifest/],
    ['x\n', /bad control line/],
  ];
  for (const [lines, re] of cases) {
    const p = spawn(streamer, ['serve', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.stdin.end(lines);
    const code = await new Promise((resolve) => p.on('close', resolve));
    assert.equal(code, 1, lines);
    assert.match(err, re);
    assert.throws(() => statSync(path.join(dir, SERVE_SOCKET)), /ENOENT/, 'no socket left behind');
  }
});
