import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packTreeToFile } from '../../../src/archive/pack.js';
import { ensureHostKey } from '../../../src/sign/host-key.js';
import { signBytes } from '../../../src/sign/signature.js';
import { cli, tempRoot } from '../../helpers/cli.js';
import { sampleManifest } from '../../helpers/manifests.js';

// Finding 8: escapes in a manifest's name or tag were printed raw by `tsmigrate checkpoints`, and
// bad limits failed only at the cgroup write of a restore. Both manifests here are signed by the
// host's own key: only the schema stands in the way.
const root = tempRoot('tsm-mfields-');
const work = mkdtempSync(path.join(tmpdir(), 'tsm-mfields-work-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

async function signedDir(dir: string, manifest: unknown): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(path.join(dir, 'manifest.json'), bytes, { mode: 0o600 });
  writeFileSync(path.join(dir, 'manifest.sig'), JSON.stringify(signBytes(await ensureHostKey(root), 'checkpoint', bytes)), { mode: 0o600 });
}

test('a checkpoint whose tag and name carry terminal escapes is not listed, and nothing raw reaches the terminal', async () => {
  const m = sampleManifest();
  const id = 'web-20260101t000000z-e5c4pe';
  await signedDir(path.join(root, 'checkpoints', id), { ...m, id, tag: 'x\x1b]0;owned\x07', container: { ...m.container, name: 'web\x1b[2J' } });
  const r = await cli(root, ['checkpoints']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(/\x1b/.test(r.stdout + r.stderr), false, JSON.stringify(r.stdout));
  assert.equal(r.stdout.includes(id), false);
  const v = await cli(root, ['checkpoint', 'verify', id]);
  assert.notEqual(v.code, 0);
  assert.match(v.stderr, /manifest\.tag/);
  assert.equal(/\x1b/.test(v.stderr), false, 'the refusal escapes what it quotes');
});

test('bad limits are refused at import, before anything is stored, naming the field', async () => {
  const m = sampleManifest();
  const dir = path.join(work, 'badlimits');
  await signedDir(dir, { ...m, container: { ...m.container, limits: { cpusetCpus: '3-1', pidsLimit: 0 } } });
  const file = path.join(work, 'badlimits.tar.zst');
  await packTreeToFile(dir, file, { zstd: 1 });
  const r = await cli(root, ['checkpoint', 'import', file]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /manifest\.container\.limits: CPU range "3-1" is reversed/);
  assert.deepEqual(readdirSync(path.join(root, 'checkpoints')).filter((f) => !f.startsWith('.') && f !== 'web-20260101t000000z-e5c4pe'), []);
});
