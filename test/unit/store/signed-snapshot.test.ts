import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { trustKey } from '../../../src/hosts/config.js';
import { restoreFromStore } from '../../../src/restore/from-store.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { initHostKey } from '../../../src/sign/host-key.js';
import { formatPublicKey } from '../../../src/sign/public-key.js';
import { signBytes } from '../../../src/sign/signature.js';
import { ChunkStore, type WriteCounters } from '../../../src/store/chunk-store.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { SNAPSHOT_FORMAT, snapshotBody, type SnapshotMeta } from '../../../src/store/snapshot.js';
import { sampleInfo } from '../../helpers/manifests.js';

const counters = (): WriteCounters => ({ logical: 0, chunks: 0, newChunks: 0, newBytes: 0 });
async function* one(b: Buffer) {
  yield b;
}

/** A store with one snapshot of "web" signed by the key of `signer`; `body` lets a test change what is stored. */
async function storeWith(dir: string, signer: Awaited<ReturnType<typeof initHostKey>>, change?: (m: SnapshotMeta) => void): Promise<ChunkStore> {
  const store = await ChunkStore.open(new LocalBackend(path.join(dir, 'store')), { create: true, key: null, seen: null });
  const criu = await store.writeStream(one(Buffer.alloc(100_000, 'images')), counters());
  const upper = await store.writeStream(one(Buffer.from('upper')), counters());
  const info = sampleInfo('web-20260101t000000z-aaaaaa', 'web');
  const meta: SnapshotMeta = { format: SNAPSHOT_FORMAT, id: info.id, container: 'web', createdAt: info.createdAt, tag: null, schedule: null, epoch: 1, checkpoint: info, streams: { criu: criu.ref, upper: upper.ref } };
  const ids = { criu: criu.ids, upper: upper.ids };
  const signature = signBytes(signer, 'checkpoint', snapshotBody(meta, ids));
  // the attack: what is stored changed after signing (a chunk's hash recomputed), the signature kept
  change?.(meta);
  await store.commit({ meta, ids, signature });
  return store;
}

test('DR restore refuses a snapshot no trusted key signed, or one changed after signing, before it asks any host; a trusted one goes on', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-snapsig-'));
  try {
    const root = path.join(dir, 'root');
    const config = path.join(dir, 'config.yaml');
    const rt = createRuntime({ root, configFile: config });
    const other = await initHostKey(path.join(dir, 'other'), { comment: 'host-a' });
    const asked: string[] = [];
    const probe = { name: 'b', connect: async () => (asked.push('b'), Promise.reject(new Error('stop here'))) };
    const req = (store: ChunkStore) => ({ name: 'web', selector: { kind: 'latest' } as const, store, target: probe, hosts: [probe], force: false });

    const store = await storeWith(path.join(dir, 'a'), other);
    await assert.rejects(restoreFromStore(rt, req(store)), (e) => {
      assert.ok(isTsmError(e, 'EUNTRUSTED'), String(e));
      assert.ok(e.message.includes(other.publicKey.fingerprint));
      assert.match(e.fix ?? '', /tsmigrate key trust/);
      return true;
    });
    assert.deepEqual(asked, [], 'no host was asked');

    await trustKey(config, formatPublicKey(other.publicKey));
    const changed = await storeWith(path.join(dir, 'b'), other, (m) => (m.streams.criu.sha256 = 'f'.repeat(64)));
    await assert.rejects(restoreFromStore(rt, req(changed)), (e) => isTsmError(e, 'EINTEGRITY') && /changed after/.test(e.message));
    assert.deepEqual(asked, []);

    // trusted and intact: it goes on to ask the hosts (here the probe stops it)
    await assert.rejects(restoreFromStore(rt, req(store)), /cannot tell whether "web" still runs/);
    assert.deepEqual(asked, ['b']);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
