import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { trustKey } from '../../../src/hosts/config.js';
import { ensureHostKey, initHostKey, keyFiles, readHostKey } from '../../../src/sign/host-key.js';
import { fingerprintOf, formatPublicKey, parsePublicKey } from '../../../src/sign/public-key.js';
import { signBytes } from '../../../src/sign/signature.js';
import { hostSigning, parseTrustOverride, type TrustOverride } from '../../../src/sign/signing.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'tsm-sign-'));

function signingOf(root: string, o: { override?: TrustOverride; warnings?: string[] } = {}) {
  const warnings = o.warnings ?? [];
  return hostSigning({
    root, configFile: path.join(root, 'config.yaml'), override: o.override ?? null,
    logger: { debug() {}, info() {}, warn: (m: string) => void warnings.push(m) },
  });
}

test('key init: a private key 0600 in a 0700 directory, a one-line public key; refuses to overwrite unless forced', async () => {
  const root = tmp();
  try {
    const k = await initHostKey(root, { comment: 'host-a' });
    const f = keyFiles(root);
    assert.equal(statSync(f.private).mode & 0o777, 0o600);
    assert.equal(statSync(f.dir).mode & 0o777, 0o700);
    const line = readFileSync(f.public, 'utf8').trim();
    assert.match(line, /^tsmigrate-ed25519 [A-Za-z0-9+/]{43}= host-a$/);
    assert.equal(parsePublicKey(line).fingerprint, k.publicKey.fingerprint);
    assert.match(k.publicKey.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    await assert.rejects(initHostKey(root), (e) => isTsmError(e, 'EBAD_STATE') && /already has a signing key/.test(e.message) && /--force/.test(e.fix ?? ''));
    assert.equal((await readHostKey(root))?.publicKey.fingerprint, k.publicKey.fingerprint, 'unchanged');
    const k2 = await initHostKey(root, { force: true });
    assert.notEqual(k2.publicKey.fingerprint, k.publicKey.fingerprint);
    assert.equal((await ensureHostKey(root)).publicKey.fingerprint, k2.publicKey.fingerprint);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a private key others can read, or a symbolic link, is refused', async () => {
  const root = tmp();
  try {
    await initHostKey(root);
    const f = keyFiles(root);
    chmodSync(f.private, 0o644);
    await assert.rejects(readHostKey(root), (e) => isTsmError(e, 'EINVAL_ARG') && /mode 644/.test(e.message));
    chmodSync(f.private, 0o600);
    renameSync(f.private, `${f.private}.real`);
    symlinkSync(`${f.private}.real`, f.private);
    await assert.rejects(readHostKey(root), (e) => isTsmError(e, 'EINVAL_ARG') && /symbolic link/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('public key lines: what is refused', () => {
  const good = `tsmigrate-ed25519 ${Buffer.alloc(32, 7).toString('base64')} b`;
  assert.equal(parsePublicKey(good).comment, 'b');
  assert.equal(parsePublicKey(good).fingerprint, fingerprintOf(Buffer.alloc(32, 7)));
  for (const bad of [
    '', 'ssh-ed25519 AAAA b', `tsmigrate-ed25519 ${Buffer.alloc(31).toString('base64')} b`, `tsmigrate-ed25519 ${Buffer.alloc(32).toString('base64')} a\x1b[31m`,
    `tsmigrate-ed25519 ${Buffer.alloc(32).toString('base64')} a b`, `tsmigrate-ed25519 ${'A'.repeat(300)}`,
  ]) {
    assert.throws(() => parsePublicKey(bad), (e) => isTsmError(e, 'EINVAL_ARG'), JSON.stringify(bad));
  }
  assert.deepEqual(parseTrustOverride('unsigned'), { unsigned: true });
  assert.throws(() => parseTrustOverride('SHA256:short'), (e) => isTsmError(e, 'EINVAL_ARG'));
});

test('verify: own key and trusted keys pass; a changed byte, another purpose, an untrusted or missing signature are refused with one line naming the signer and the fix', async () => {
  const A = tmp();
  const B = tmp();
  const evil = tmp();
  try {
    const bytes = Buffer.from('{"manifest":1}\n');
    const a = signingOf(A);
    const sig = await a.sign('checkpoint', bytes);
    assert.equal((await a.verify('checkpoint', bytes, sig, 'checkpoint x'))?.by, 'own');

    const b = signingOf(B);
    const keyA = (await readHostKey(A))!.publicKey;
    await assert.rejects(b.verify('checkpoint', bytes, sig, 'checkpoint x'), (e) => {
      assert.ok(isTsmError(e, 'EUNTRUSTED'));
      assert.match(e.message, new RegExp(`checkpoint x is signed by ${keyA.fingerprint.replace(/[+/]/g, '\\$&')}`));
      assert.match(e.fix ?? '', /tsmigrate key trust 'tsmigrate-ed25519 [^']+'/);
      assert.match(e.fix ?? '', /--trust-signer SHA256:/);
      assert.equal(e.oneLine().split('\n').length, 1);
      return true;
    });
    await trustKey(path.join(B, 'config.yaml'), formatPublicKey(keyA));
    assert.equal((await b.verify('checkpoint', bytes, sig, 'checkpoint x'))?.by, 'config');

    const changed = Buffer.from(bytes);
    changed[2] = changed[2]! ^ 1;
    await assert.rejects(b.verify('checkpoint', changed, sig, 'checkpoint x'), (e) => isTsmError(e, 'EINTEGRITY') && /changed after/.test(e.message));
    await assert.rejects(b.verify('move-sums', bytes, { ...sig, purpose: 'move-sums' }, 'move'), (e) => isTsmError(e, 'EINTEGRITY'));
    await assert.rejects(b.verify('checkpoint', bytes, null, 'checkpoint x'), (e) => isTsmError(e, 'EUNTRUSTED') && /not signed/.test(e.message));
    await assert.rejects(b.verify('checkpoint', bytes, { ...sig, extra: 1 }, 'checkpoint x'), (e) => isTsmError(e, 'EUNTRUSTED') && /malformed/.test(e.message));

    // re-signed by another key: refused, naming that key
    const evilKey = await initHostKey(evil, { comment: 'evil' });
    const forged = signBytes(evilKey, 'checkpoint', changed);
    await assert.rejects(b.verify('checkpoint', changed, forged, 'checkpoint x'), (e) => isTsmError(e, 'EUNTRUSTED') && e.message.includes(evilKey.publicKey.fingerprint) && /\(evil\)/.test(e.message));

    // --trust-signer: that signer, once, with a warning; nothing else
    const warnings: string[] = [];
    const once = signingOf(B, { override: { fingerprint: evilKey.publicKey.fingerprint }, warnings });
    assert.equal((await once.verify('checkpoint', changed, forged, 'checkpoint x'))?.by, 'override');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /accepted once because of --trust-signer/);
    await assert.rejects(once.verify('checkpoint', bytes, null, 'checkpoint x'), (e) => isTsmError(e, 'EUNTRUSTED'));
    const unsigned = signingOf(B, { override: { unsigned: true }, warnings });
    assert.equal(await unsigned.verify('checkpoint', bytes, null, 'checkpoint x'), null);
    assert.equal(warnings.length, 2);
    await assert.rejects(unsigned.verify('checkpoint', changed, forged, 'checkpoint x'), (e) => isTsmError(e, 'EUNTRUSTED'));
  } finally {
    for (const d of [A, B, evil]) rmSync(d, { recursive: true, force: true });
  }
});

test('a long-running signer (the daemon) signs with the new key once key init --force replaced it', async () => {
  const root = tmp();
  try {
    const s = signingOf(root);
    const first = await s.sign('checkpoint', Buffer.from('x'));
    assert.equal(first.key, formatPublicKey((await readHostKey(root))!.publicKey), 'made on first need');
    assert.equal((await s.sign('checkpoint', Buffer.from('y'))).key, first.key);
    const fresh = await initHostKey(root, { force: true });
    assert.equal((await s.sign('checkpoint', Buffer.from('z'))).key, formatPublicKey(fresh.publicKey));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
