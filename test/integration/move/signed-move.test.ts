import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { untrustKey } from '../../../src/hosts/config.js';
import { initHostKey, loadHostKey } from '../../../src/sign/host-key.js';
import { MovePair, COUNTER } from '../../helpers/move-pair.js';
import { eventually } from '../../helpers/cli.js';
import { peerConfigOf, trustRoot } from '../../helpers/trust.js';

// A move's peer restores only what a key it trusts signed: the begin (bound to the connection)
// and the sums of what arrived. Real sshd peer on loopback, real CRIU.
const p = new MovePair();

before(async () => {
  await p.start('tsm-peer-sig', '127.0.0.8');
});
after(async () => {
  await p.stop(['sgm', 'sgu', 'sgk']);
});

async function running(name: string): Promise<void> {
  await p.ta(['run', '-d', name, '--image', 'busybox', '--', ...COUNTER]);
  await eventually(async () => (await p.count(p.A, name)) > 3);
}

test('a signed move between two hosts that trust each other', async () => {
  await running('sgm');
  const r = await p.move('sgm');
  assert.equal(r.code, 0, r.stderr);
  await p.assertOneCopy('sgm', 'B');
});

test('a peer that does not trust the source refuses before anything is received, naming the signer and the fix; the container runs on', async () => {
  const fp = (await loadHostKey(p.A)).publicKey.fingerprint;
  await untrustKey(peerConfigOf(p.B), fp);
  try {
    await running('sgu');
    const r = await p.move('sgu');
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(fp), r.stderr);
    assert.match(r.stderr, /the peer .* refuses: the move of "sgu" is signed by SHA256:\S+ \(\S+\), a key this host does not trust/);
    assert.match(r.stderr, /on the peer: .*tsmigrate key trust 'tsmigrate-ed25519 /);
    await p.assertOneCopy('sgu', 'A');
  } finally {
    await trustRoot(peerConfigOf(p.B), p.A);
  }
});

test('a source whose key changed (a re-signed move) is refused by a peer that trusts only the old key', async () => {
  const old = (await loadHostKey(p.A)).publicKey.fingerprint;
  const fresh = await initHostKey(p.A, { force: true });
  try {
    await running('sgk');
    const r = await p.move('sgk');
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(fresh.publicKey.fingerprint), r.stderr);
    assert.equal(r.stderr.includes(old), false);
    await p.assertOneCopy('sgk', 'A');
    // trusted: the same move goes through
    await trustRoot(peerConfigOf(p.B), p.A);
    const ok = await p.move('sgk');
    assert.equal(ok.code, 0, ok.stderr);
    await p.assertOneCopy('sgk', 'B');
  } finally {
    await trustRoot(peerConfigOf(p.B), p.A);
  }
});
