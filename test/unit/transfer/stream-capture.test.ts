/**
 * tsm-streamer (native/streamer/capture.c) driven by a stand-in for CRIU's side
 * of the image-streamer protocol (test/fixtures/fake-criu-stream.py: requests,
 * pipes passed with SCM_RIGHTS). The real CRIU drives it in the move tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { LiveImageWriter } from '../../../src/transfer/live-images.js';
import { CAPTURE_SOCKET, listenForImages } from '../../../src/transfer/stream-capture.js';
import { cannotStream } from '../../../src/transfer/streamer-process.js';
import { resolveTools } from '../../../src/runtime/tools.js';

const { streamer } = resolveTools(process.env);
import { isTsmError } from '../../../src/errors/errors.js';

const FAKE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/fake-criu-stream.py');

/** The bytes the fake writes for an image (its own pattern). */
function content(name: string, size: number): Buffer {
  const parts: Buffer[] = [];
  let len = 0;
  for (let i = 0; len < size; i++) {
    const d = createHash('sha256').update(`${name}:${i}`).digest();
    parts.push(d);
    len += d.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** Run the fake CRIU; resolves when it exits 0, rejects otherwise. */
function fakeCriu(dir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', [FAKE, path.join(dir, CAPTURE_SOCKET), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`fake criu exited ${code}: ${err.trim().split('\n').at(-1)}`))));
  });
}

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'tsm-stream-'));
}

test('the streamer is built (scripts/setup.sh builds native/)', () => {
  assert.ok(existsSync(streamer), `${streamer} is missing`);
});

test('images written side by side, in uneven steps, arrive whole; the socket is root-only and gone once CRIU is connected', async (t) => {
  const base = await tmp();
  try {
    const dir = path.join(base, 'images');
    await fs.mkdir(dir);
    const cap = await listenForImages(dir, streamer);
    t.after(() => cap.kill());
    const sock = statSync(path.join(dir, CAPTURE_SOCKET));
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o077, 0, 'only its owner (root) may connect');
    const specs: Array<[string, number, number]> = [
      ['pagemap-1.img', 3000, 100],
      ['pages-1.img', 3 << 20, 300_001], // more than one record of 1 MiB
      ['core-1.img', 517, 517],
      ['empty.img', 0, 1],
      ['pages-2.img', 70_000, 65_536],
    ];
    const dumped = fakeCriu(dir, specs.map(([n, size, step]) => `${n}=${size}x${step}`));
    const out = path.join(base, 'out');
    await pipeline(cap.records(dumped), new LiveImageWriter(out));
    await assert.doesNotReject(dumped);
    assert.deepEqual((await fs.readdir(out)).sort(), specs.map(([n]) => n).sort());
    for (const [name, size] of specs) assert.ok((await fs.readFile(path.join(out, name))).equals(content(name, size)), name);
    await assert.rejects(fs.stat(path.join(dir, CAPTURE_SOCKET)), { code: 'ENOENT' });
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('a failed dump ends the stream with the dump\'s error and without an end record', async () => {
  const base = await tmp();
  try {
    const cap = await listenForImages(base, streamer);
    // the fake writes its image and exits 0; the dump is then said to have failed
    const wrote = fakeCriu(base, ['pages-1.img=200000x50000']);
    const dumped = wrote.then(() => {
      throw new Error('criu dump failed: injected');
    });
    dumped.catch(() => undefined);
    const parts: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of cap.records(dumped)) parts.push(c as Buffer);
      })(),
      /injected/,
    );
    const all = Buffer.concat(parts);
    assert.ok(all.length >= 200000, 'the data came through');
    // no 'E' record after the last data record: the peer never sees a complete image set
    await assert.rejects(pipeline(async function* () {
      yield all;
    }, new LiveImageWriter(path.join(base, 'out'))), (e: unknown) => isTsmError(e, 'EPROTO') && /before its end record/.test((e as Error).message));
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('a request naming a path (../x) stops the streamer with a one-line reason', async () => {
  const base = await tmp();
  try {
    const cap = await listenForImages(base, streamer);
    const name = Buffer.from('../etc/passwd');
    const req = Buffer.concat([Buffer.from([0x0a, name.length]), name]).toString('hex');
    const dumped = fakeCriu(base, ['--raw-request', req]);
    await assert.rejects(
      (async () => {
        for await (const _ of cap.records(dumped)) void _;
      })(),
      (e: unknown) => isTsmError(e, 'EIO') && /unexpected name/.test((e as Error).message) && !(e as Error).message.includes('\n'),
    );
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

for (const when of ['after the first chunk', 'before it was read at all (a peer call that failed at once)'] as const) {
  test(`a stream dropped ${when} stops the streamer, and CRIU fails on a broken pipe instead of hanging`, async () => {
    const base = await tmp();
    try {
      const cap = await listenForImages(base, streamer);
      const dumped = fakeCriu(base, ['pages-1.img=67108864x1048576']);
      dumped.catch(() => undefined);
      const stream = cap.records(dumped);
      if (when === 'after the first chunk') {
        for await (const _ of stream) break; // the consumer goes away
      } else {
        await new Promise((r) => setTimeout(r, 100));
        stream.destroy();
      }
      await assert.rejects(dumped, /exited 1/);
    } finally {
      await fs.rm(base, { recursive: true, force: true });
    }
  });
}

test('where it cannot run, it says why (and the move falls back to files)', async () => {
  assert.match(cannotStream(path.join('/tmp', 'x'.repeat(100)), streamer) ?? '', /too long/);
  assert.match(cannotStream('/tmp', '/nonexistent/tsm-streamer') ?? '', /not built/);
  assert.equal(cannotStream('/tmp', streamer), undefined);
  await assert.rejects(listenForImages('/tmp', '/nonexistent/tsm-streamer'), (e: unknown) => isTsmError(e, 'ENATIVE') && /not built/.test((e as Error).message));
  // a directory that does not exist: the streamer cannot listen, and says so
  await assert.rejects(listenForImages('/nonexistent-dir-tsm', streamer), (e: unknown) => isTsmError(e, 'ENATIVE') && /cannot listen/.test((e as Error).message));
});
