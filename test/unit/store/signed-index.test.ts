/**
 * An unencrypted store's index is signed by the host that wrote it: a store
 * host (holding no key) that writes its own index, with a good checksum and a
 * higher number, listing fewer checkpoints, is refused; so is an index signed
 * by a host this one does not trust, or an unsigned one. The host that wrote
 * it, and one that trusts it, read it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { trustKey } from '../../../src/hosts/config.js';
import { initHostKey } from '../../../src/sign/host-key.js';
import { formatPublicKey } from '../../../src/sign/public-key.js';
import { hostSigning } from '../../../src/sign/signing.js';
import { ChunkStore, type WriteCounters } from '../../../src/store/chunk-store.js';
import { indexSeenInMemory } from '../../../src/store/index-seen.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { encodeObject } from '../../../src/store/object.js';
import { encodeIndex, indexAad } from '../../../src/store/snapshot-index.js';
import { withSignature } from '../../../src/sign/trailer.js';
import { craftMeta } from '../../helpers/store-craft.js';

const counters = (): WriteCounters => ({ logical: 0, chunks: 0, newChunks: 0, newBytes: 0 });
async function* once(b: Buffer) {
  yield b;
}
const silent = { debug() {}, info() {}, warn() {} };
const signingOf = (root: string) => hostSigning({ root, configFile: path.join(root, 'config.yaml'), override: null, logger: silent });

test("an unencrypted store's index: signed by its writer, read by it and by a host that trusts it; a store host's own index, an untrusted signer's or an unsigned one refused", async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-signidx-'));
  try {
    const [rootA, rootB, rootC] = ['a', 'b', 'c'].map((n) => path.join(dir, n));
    const a = await initHostKey(rootA!, { comment: 'host-a' });
    const storeDir = path.join(dir, 'store');
    const open = (root: string, signing = signingOf(root)) => ChunkStore.open(new LocalBackend(storeDir), { create: true, key: null, seen: indexSeenInMemory(), signing });
    const store = await open(rootA!);
    for (let i = 1; i <= 2; i++) {
      const c = counters();
      const criu = await store.writeStream(once(randomBytes(50_000)), c);
      const upper = await store.writeStream(once(Buffer.from(`upper ${i}`)), c);
      await store.commit({ meta: craftMeta(`web-2026120${i}t100000z-abcdef`, 'web', `2026-12-0${i}T10:00:00.000Z`, criu.ref, upper.ref), ids: { criu: criu.ids, upper: upper.ids } });
    }
    const good = await store.readIndex();
    assert.equal(good.snapshots.length, 2);

    // B trusts A: reads it; C does not: refused, naming A's key
    await initHostKey(rootB!);
    await trustKey(path.join(rootB!, 'config.yaml'), formatPublicKey(a.publicKey));
    assert.equal((await (await open(rootB!)).readIndex()).seq, good.seq);
    await initHostKey(rootC!);
    await assert.rejects((await open(rootC!)).readIndex(), (e) => isTsmError(e, 'EUNTRUSTED') && e.message.includes(a.publicKey.fingerprint));

    // the store host writes an index of its own: the newest checkpoint dropped, the number raised, a good checksum
    const forged = { ...good, seq: good.seq + 1, snapshots: good.snapshots.slice(0, 1) };
    const host = new LocalBackend(storeDir);
    await host.open(null);
    await host.putIndex(encodeObject(encodeIndex(forged), indexAad(store.info.id), null, 3));
    await assert.rejects((await open(rootA!)).readIndex(), (e) => isTsmError(e, 'EUNTRUSTED') && /unsigned|not signed/i.test(e.message));

    // ... or keeps A's signature on its edited index: changed after signing
    const signed = await signingOf(rootA!).sign('store-index', encodeIndex(good));
    await host.putIndex(encodeObject(withSignature(encodeIndex(forged), signed), indexAad(store.info.id), null, 3));
    await assert.rejects((await open(rootA!)).readIndex(), (e) => isTsmError(e, 'EINTEGRITY') || isTsmError(e, 'EUNTRUSTED'));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
