import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packTreeToFile, unpackFileToTree } from '../../../src/archive/pack.js';
import { initHostKey } from '../../../src/sign/host-key.js';
import { signBytes } from '../../../src/sign/signature.js';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';

// Finding 1: an exported checkpoint with a changed blob and recomputed sha256 values was imported,
// verified "ok" and restored. Now every checkpoint is signed over its manifest's bytes.
const A = tempRoot('tsm-signA-');
const B = tempRoot('tsm-signB-');
const work = mkdtempSync(path.join(tmpdir(), 'tsm-signwork-'));
const cfg = (root: string) => path.join(root, 'config.yaml');
const T = (root: string, args: string[]) => cliOk(root, ['--config', cfg(root), ...args], { timeoutMs: 120000 });
const R = (root: string, args: string[]) => cli(root, ['--config', cfg(root), ...args], { timeoutMs: 120000 });
const counter = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; sleep 0.1; done'];

let id = '';
let archive = '';
let fpA = '';
let lineA = '';

before(async () => {
  await importBusybox(A);
  await importBusybox(B);
  await T(A, ['run', '-d', 'sg', '--image', 'busybox', '--', ...counter]);
  await eventually(async () => Number((await T(A, ['exec', 'sg', '--', 'cat', '/tmp/count'])).trim()) > 3);
  id = (JSON.parse(await T(A, ['--json', 'checkpoint', 'sg'])) as { id: string }).id;
  archive = path.join(work, 'sg.tar.zst');
  await T(A, ['checkpoint', 'export', id, archive]);
  [lineA, fpA] = (await T(A, ['key', 'show'])).trim().split('\n') as [string, string];
});
after(async () => {
  for (const r of [A, B]) await cli(r, ['rm', '-f', 'sg']);
  for (const d of [A, B, work]) rmSync(d, { recursive: true, force: true });
});

const storeOf = (root: string) => (existsSync(path.join(root, 'checkpoints')) ? readdirSync(path.join(root, 'checkpoints')) : []);

/** The attack: a script added to the upper layer, the manifest's sha256 and size recomputed. Returns the unpacked dir. */
async function tamper(name: string): Promise<string> {
  const dir = path.join(work, name);
  await unpackFileToTree(archive, dir);
  const upper = path.join(work, `${name}-upper`);
  await unpackFileToTree(path.join(dir, 'upper.tar.zst'), upper, { allowWhiteouts: true });
  mkdirSync(path.join(upper, 'etc'), { recursive: true });
  writeFileSync(path.join(upper, 'etc/evil.sh'), '#!/bin/sh\necho owned > /tmp/owned\n', { mode: 0o755 });
  rmSync(path.join(dir, 'upper.tar.zst'));
  const r = await packTreeToFile(upper, path.join(dir, 'upper.tar.zst'), { zstd: 3 });
  const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { blobs: { upper: { sha256: string; size: number; entries: number } } };
  m.blobs.upper = { ...m.blobs.upper, sha256: r.sha256, size: r.bytes, entries: r.entries };
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(m, null, 2)}\n`);
  return dir;
}
async function pack(dir: string): Promise<string> {
  const file = `${dir}.tar.zst`;
  await packTreeToFile(dir, file, { zstd: 1 });
  return file;
}
function oneLine(r: { code: number; stderr: string }): string {
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  return r.stderr;
}

test('a host that does not trust the signer refuses the import, naming its fingerprint and the fix; nothing is stored', async () => {
  assert.match(readFileSync(path.join(A, 'checkpoints', id, 'manifest.sig'), 'utf8'), /"purpose":"checkpoint"/);
  const err = oneLine(await R(B, ['checkpoint', 'import', archive]));
  assert.ok(err.includes(fpA), err);
  assert.match(err, /does not trust/);
  assert.match(err, /tsmigrate key trust 'tsmigrate-ed25519 /);
  assert.deepEqual(storeOf(B).filter((f) => !f.startsWith('.')), []);
});

test('the tampered checkpoint with recomputed sha256 values is refused: as signed, re-signed by another key; signed by a trusted key it is accepted', async () => {
  await T(B, ['key', 'trust', lineA]);
  // kept signature: the manifest changed after A signed it
  const kept = await pack(await tamper('kept'));
  const e1 = oneLine(await R(B, ['checkpoint', 'import', kept]));
  assert.match(e1, /was changed after SHA256:\S+ signed it/);
  assert.ok(e1.includes(fpA));
  // re-signed by the attacker's own key
  const dir = await tamper('resigned');
  const evilRoot = path.join(work, 'evil');
  const evil = await initHostKey(evilRoot, { comment: 'mallory' });
  writeFileSync(path.join(dir, 'manifest.sig'), JSON.stringify(signBytes(evil, 'checkpoint', readFileSync(path.join(dir, 'manifest.json')))));
  const resigned = await pack(dir);
  const e2 = oneLine(await R(B, ['checkpoint', 'import', resigned]));
  assert.ok(e2.includes(evil.publicKey.fingerprint), e2);
  assert.match(e2, /\(mallory\), a key this host does not trust/);
  // unsigned (the signature removed): refused too
  rmSync(path.join(dir, 'manifest.sig'));
  const unsigned = path.join(work, 'unsigned.tar.zst');
  await packTreeToFile(dir, unsigned, { zstd: 1 });
  assert.match(oneLine(await R(B, ['checkpoint', 'import', unsigned])), /is not signed/);
  assert.deepEqual(storeOf(B).filter((f) => !f.startsWith('.')), [], 'nothing stored');
  // the real one, signed by a key B trusts
  const m = JSON.parse(await T(B, ['--json', 'checkpoint', 'import', archive])) as { id: string };
  assert.equal(m.id, id);
  assert.match(await T(B, ['checkpoint', 'verify', id]), /ok/);
  await T(B, ['restore', id]);
  assert.equal((JSON.parse(await T(B, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((c) => c.name === 'sg')?.state, 'running');
  await T(B, ['rm', '-f', 'sg']);
});

test('a checkpoint changed in the store: verify reports it and restore refuses before anything is made', async () => {
  const dir = path.join(A, 'checkpoints', id);
  const t = await tamper('instore');
  for (const f of ['upper.tar.zst', 'manifest.json']) copyFileSync(path.join(t, f), path.join(dir, f));
  const v = await R(A, ['checkpoint', 'verify', id]);
  assert.notEqual(v.code, 0);
  assert.match(v.stdout + v.stderr, /changed after/);
  await T(A, ['rm', '-f', 'sg']);
  const r = oneLine(await R(A, ['restore', id]));
  assert.match(r, /changed after/);
  assert.equal(existsSync(path.join(A, 'containers', 'sg')), false, 'no container made');
});
