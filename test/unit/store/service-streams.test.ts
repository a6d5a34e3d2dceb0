/**
 * The store host's side of storePutChunks: a record that claims too much, a
 * stream that ends inside a record, and a source that fails midway are each
 * one typed error for the call, never an unhandled 'error' event; the store
 * takes the next call as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { STORE_FORMAT } from '../../../src/store/backend.js';
import { chunkId } from '../../../src/store/keys.js';
import { encodeObject } from '../../../src/store/object.js';
import { encodeRecords } from '../../../src/store/records.js';
import { StoreService } from '../../../src/store/service.js';
import { isTsmError } from '../../../src/errors/errors.js';

test('storePutChunks: bad records and a failing source are typed errors; the next call works', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-svc-'));
  const svc = new StoreService();
  try {
    const store = path.join(dir, 's');
    await svc.storeOpen({ path: store, create: { format: STORE_FORMAT, id: 'f'.repeat(32), createdAt: new Date().toISOString(), chunking: { algorithm: 'fastcdc-gear32', min: 1, avg: 2, max: 3 }, encryption: null } });
    const rec = () => {
      const data = randomBytes(1000);
      const id = chunkId(data, null);
      return { id: id.toString('hex'), obj: encodeObject(data, id, null) };
    };
    const good = rec();
    const huge = Buffer.alloc(36);
    huge.writeUInt32BE(0xffffffff, 32);
    const cut = encodeRecords([rec()]);
    for (const [label, src, re] of [
      ['a record claiming 4 GiB', Readable.from([encodeRecords([good]), huge]), /claims 4294967295 bytes/],
      ['a stream ending inside a record', Readable.from([cut.subarray(0, cut.length - 5)]), /ended inside a record/],
      ['a source failing midway', Readable.from((async function* () {
        yield encodeRecords([good]);
        throw new Error('the link broke');
      })()), /the link broke/],
    ] as const) {
      await assert.rejects(svc.storePutChunks({ path: store }, src), (e) => (isTsmError(e) || e instanceof Error) && re.test((e as Error).message), label);
    }
    const other = rec();
    assert.deepEqual(await svc.storePutChunks({ path: store }, Readable.from([encodeRecords([good, other])])), { written: 2, bytes: good.obj.length + other.obj.length });
    assert.deepEqual((await svc.storeHas({ path: store, ids: [good.id, other.id] })).have, [true, true]);
  } finally {
    await svc.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
});
