/**
 * `checkpoint import` of crafted archives (issue 16, findings 2 and 4): top-level
 * symlinks named like blobs, a compression bomb declaring a huge dump.log, one
 * expanding past the outer ratio, an entry flood; and the leftovers of an import
 * killed with SIGKILL, swept by the next one. Archives are built here as real
 * tar + zstd files; the CLI runs as a separate process.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fs, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { importCheckpoint } from '../../../src/checkpoint/archive-file.js';
import { CheckpointStore } from '../../../src/checkpoint/store.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { statePaths } from '../../../src/state/paths.js';
import { CLI, cli, tempRoot } from '../../helpers/cli.js';
import { sampleManifest } from '../../helpers/manifests.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { ensureHostKey } from '../../../src/sign/host-key.js';
import { signBytes } from '../../../src/sign/signature.js';
import { GiB, MiB, tarOf, zstdOf, type Entry } from '../../helpers/bombs.js';

const root = tempRoot();
const work = mkdtempSync(path.join(tmpdir(), 'tsm-import-bounds-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});
const storeDir = path.join(root, 'checkpoints');
const stored = () => (existsSync(storeDir) ? readdirSync(storeDir) : []);

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A manifest parseManifest accepts, for blobs with the given content. */
/** A well-formed manifest (the strict schema) of `id` with these two blobs. */
function manifest(id: string, criu: Buffer | string, upper: Buffer | string): string {
  const blob = (name: 'criu' | 'upper', b: Buffer | string) => ({ file: `${name}.tar.zst` as const, sha256: sha(b), size: Buffer.byteLength(b), compression: 'zstd' as const });
  return JSON.stringify({ ...sampleManifest(), id, blobs: { criu: blob('criu', criu), upper: blob('upper', upper) } });
}

async function archive(name: string, entries: Iterable<Entry>): Promise<string> {
  const file = path.join(work, name);
  await fs.writeFile(file, await zstdOf(tarOf(entries)));
  return file;
}

test('top-level symlinks named like blobs are refused; the host files they point at are untouched and nothing of them is shown', async () => {
  const host = path.join(work, 'host-secret');
  await fs.writeFile(host, 'root:$6$secret-hash:19000:0:99999:7:::\n', { mode: 0o644 });
  const hostDir = path.join(work, 'host-dir');
  await fs.mkdir(hostDir, { mode: 0o755 });
  const before = statSync(host);
  const cases: Array<[string, Entry[]]> = [
    ['dump.log -> a host file', [{ name: 'dump.log', type: 'symlink', linkname: host }, { name: 'criu.tar.zst', type: 'symlink', linkname: host }]],
    ['criu.tar.zst -> a directory', [{ name: 'criu.tar.zst', type: 'symlink', linkname: hostDir }]],
  ];
  for (const [what, links] of cases) {
    const upper = 'upper';
    // the manifest comes first and is valid, so an import that followed the links would reach chmod and verify
    const file = await archive(`${what.replace(/\W+/g, '-')}.tar.zst`, [
      { name: './', type: 'directory', mode: 0o755 },
      { name: 'manifest.json', body: manifest('web-20260101t000000z-aaaa', 'criu', upper) },
      { name: 'upper.tar.zst', body: upper },
      ...links,
    ]);
    const r = await cli(root, ['checkpoint', 'import', file]);
    assert.notEqual(r.code, 0, what);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /is a symlink, not a regular file/, what);
    assert.doesNotMatch(r.stderr, /[0-9a-f]{12}|bytes/, `${what}: nothing of the target is shown`);
    const after = statSync(host);
    assert.equal(after.mode, before.mode, `${what}: the host file's mode`);
    assert.equal(await fs.readFile(host, 'utf8'), 'root:$6$secret-hash:19000:0:99999:7:::\n');
    assert.equal(statSync(hostDir).mode & 0o777, 0o755, `${what}: the host directory's mode`);
    assert.deepEqual(stored(), [], `${what}: nothing stored`);
  }
});

test('a symlink already in the store is reported by verify without reading its target', async () => {
  const store = new CheckpointStore(statePaths(root), createRuntime({ root }).signing);
  const id = 'web-20260101t000000z-bbbb';
  const dir = store.path(id);
  await fs.mkdir(dir, { recursive: true });
  const host = path.join(work, 'host-blob');
  await fs.writeFile(host, 'host content');
  const text = manifest(id, 'host content', 'u');
  await fs.writeFile(path.join(dir, 'manifest.json'), text);
  // signed by this host: only the link is wrong
  await fs.writeFile(path.join(dir, 'manifest.sig'), JSON.stringify(signBytes(await ensureHostKey(root), 'checkpoint', Buffer.from(text))));
  await fs.symlink(host, path.join(dir, 'criu.tar.zst'));
  await fs.writeFile(path.join(dir, 'upper.tar.zst'), 'u');
  try {
    assert.deepEqual(await store.verify(id), ['criu.tar.zst is a symbolic link, not a file']);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

test('an ~87 KB archive whose dump.log expands to 1.5 GiB is refused from its header, early and with bounded memory', async () => {
  const file = await archive('dump-bomb.tar.zst', [
    { name: './', type: 'directory', mode: 0o755 },
    { name: 'dump.log', body: { zeros: 1.5 * GiB } },
    { name: 'manifest.json', body: manifest('web-20260101t000000z-cccc', 'c', 'u') },
  ]);
  assert.ok(statSync(file).size < 100 * 1024, `${statSync(file).size} bytes`);
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t0 = performance.now();
  const err = await importCheckpoint(new CheckpointStore(statePaths(root), createRuntime({ root }).signing), file).then(() => undefined, (e: unknown) => e);
  const ms = performance.now() - t0;
  clearInterval(timer);
  assert.ok(isTsmError(err, 'EINVAL_ARG'), String(err));
  assert.match(err.message, /declares "dump.log" of 1610612736 bytes \(at most 268435456\)/);
  assert.ok(ms < 3000, `${ms} ms`);
  assert.ok(peak - base < 128 * MiB, `RSS grew ${((peak - base) / MiB).toFixed(0)} MiB`);
  assert.deepEqual(stored(), []);
});

test('a dump.log under its cap that expands past the outer ratio is refused once past the slack, with what was written bounded', async () => {
  const file = await archive('ratio-bomb.tar.zst', [{ name: './', type: 'directory', mode: 0o755 }, { name: 'dump.log', body: { zeros: 200 * MiB } }]);
  const err = await importCheckpoint(new CheckpointStore(statePaths(root), createRuntime({ root }).signing), file).then(() => undefined, (e: unknown) => e);
  assert.ok(isTsmError(err, 'EINVAL_ARG'), String(err));
  const m = /expands more than 64 times \((\d+) compressed bytes gave (\d+)\)/.exec(err.message);
  assert.ok(m, err.message);
  // the count includes the refused output buffer (at most 1 MiB), which is never handed on
  assert.ok(Number(m[2]) <= 65 * MiB, `decompressed ${m[2]} bytes before the refusal`);
  assert.deepEqual(stored(), []);
});

test('an entry flood is refused at the seventh entry', async () => {
  function* flood(): Generator<Entry> {
    yield { name: './', type: 'directory', mode: 0o755 };
    for (let i = 0; i < 20_000; i++) yield { name: 'dump.log', body: 'x' };
  }
  const file = await archive('flood.tar.zst', flood());
  const t0 = performance.now();
  const r = await cli(root, ['checkpoint', 'import', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /has more than 6 entries/);
  assert.ok(performance.now() - t0 < 10_000);
  assert.deepEqual(stored(), []);
});

test('the temp dir of an import killed with SIGKILL is swept by the next import (one of a live process is kept)', async () => {
  // big enough (random: nothing to compress) that the import is still writing when it is killed
  const big = randomBytes(160 * MiB);
  const file = await archive('big.tar.zst', [{ name: './', type: 'directory', mode: 0o755 }, { name: 'criu.tar.zst', body: big }]);
  await fs.mkdir(storeDir, { recursive: true, mode: 0o700 });
  const live = path.join(storeDir, `.import-${process.pid}-abc123`);
  await fs.mkdir(live);
  const child = spawn(process.execPath, [CLI, '--root', root, 'checkpoint', 'import', file], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  let leftover: string | undefined;
  for (let i = 0; i < 2000 && leftover === undefined; i++) {
    leftover = stored().find((n) => n.startsWith(`.import-${child.pid}-`) && existsSync(path.join(storeDir, n, 'criu.tar.zst')));
    if (leftover === undefined) await sleep(2);
  }
  child.kill('SIGKILL');
  await exited;
  assert.ok(leftover, 'the import was caught while writing');
  assert.ok(existsSync(path.join(storeDir, leftover)), 'SIGKILL left its temp dir');
  // the next import (of anything: this one is refused) sweeps it
  const junk = path.join(work, 'junk');
  await fs.writeFile(junk, 'not an archive');
  const r = await cli(root, ['checkpoint', 'import', junk]);
  assert.notEqual(r.code, 0);
  assert.equal(existsSync(path.join(storeDir, leftover)), false, 'swept');
  assert.ok(existsSync(live), 'the temp dir of a live process is kept');
  await fs.rmdir(live);
  assert.deepEqual(stored(), []);
});
