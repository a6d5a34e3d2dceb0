import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chunkId, deriveKey } from '../../../src/store/keys.js';
import { checkObject, decodeObject, encodeObject, isEncrypted } from '../../../src/store/object.js';
import { isTsmError } from '../../../src/errors/errors.js';

const key = deriveKey(randomBytes(32));
const other = deriveKey(randomBytes(32));
const integrity = (e: unknown) => isTsmError(e) && e.code === 'EINTEGRITY';

test('objects round-trip: compressible and random, plain and encrypted', () => {
  for (const data of [Buffer.alloc(100_000, 'abc'), randomBytes(50_000), Buffer.alloc(0), Buffer.from('x')]) {
    for (const k of [null, key]) {
      const id = chunkId(data, k);
      const obj = encodeObject(data, id, k);
      assert.equal(checkObject(obj), null);
      assert.equal(isEncrypted(obj), k !== null);
      assert.deepEqual(decodeObject(obj, id, k, 'test'), data);
    }
  }
  // compressible data is stored compressed
  assert.ok(encodeObject(Buffer.alloc(100_000, 'abc'), Buffer.alloc(32), null).length < 1000);
});

test('encrypted objects do not contain the plaintext, and ids are keyed', () => {
  const data = Buffer.from('secret memory page '.repeat(1000));
  const obj = encodeObject(data, chunkId(data, key), key);
  assert.equal(obj.includes(Buffer.from('secret memory page')), false);
  assert.notDeepEqual(chunkId(data, key), chunkId(data, null));
  assert.notDeepEqual(chunkId(data, key), chunkId(data, other));
});

test('any flipped byte is detected; wrong key, swapped id and missing key are refused', () => {
  const data = randomBytes(4096);
  const id = chunkId(data, key);
  const obj = encodeObject(data, id, key);
  for (const at of [0, 5, 9, 20, obj.length >> 1, obj.length - 40, obj.length - 1]) {
    const bad = Buffer.from(obj);
    bad[at]! ^= 0x01;
    assert.notEqual(checkObject(bad), null, `byte ${at}`);
    assert.throws(() => decodeObject(bad, id, key, 'chunk'), integrity);
  }
  assert.throws(() => decodeObject(obj, id, other, 'chunk'), /authentication failed/);
  assert.throws(() => decodeObject(obj, chunkId(randomBytes(8), key), key, 'chunk'), /authentication failed/);
  assert.throws(() => decodeObject(obj, id, null, 'chunk'), /is encrypted/);
  assert.throws(() => decodeObject(obj.subarray(0, 20), id, key, 'chunk'), /truncated/);
});
