import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { compress, decompress } from 'zstd-napi';
import { TsmError } from '../errors/errors.js';
import type { StoreKey } from './keys.js';

/**
 * One stored object (a chunk, or a snapshot's metadata), self-checking:
 *
 *   "TSMO" | version u8 = 1 | flags u8 (1 = zstd, 2 = AES-256-GCM) | plain length u32 BE
 *   | [nonce 12] | payload | [GCM tag 16] | sha256 of everything before it (32)
 *
 * The trailing sha256 lets a store host without the key check that what it holds
 * is what was written (bit rot, truncation); the GCM tag (with the object's id
 * as additional data, so objects cannot be swapped) and the content id prove
 * the content on the side that has the key.
 */
const MAGIC = Buffer.from('TSMO');
const HEAD = 10;
const NONCE = 12;
const TAG = 16;
const SUM = 32;
const F_ZSTD = 1;
const F_GCM = 2;
export const MAX_OBJECT_PLAIN = 64 << 20;

export function encodeObject(plain: Buffer, aad: Buffer, key: StoreKey | null, level = 1): Buffer {
  let flags = 0;
  let payload = plain;
  if (plain.length >= 64) {
    const z = compress(plain, { compressionLevel: level });
    if (z.length < plain.length * 0.97) {
      payload = z;
      flags |= F_ZSTD;
    }
  }
  const head = Buffer.alloc(HEAD);
  MAGIC.copy(head, 0);
  head[4] = 1;
  head[5] = flags | (key ? F_GCM : 0);
  head.writeUInt32BE(plain.length, 6);
  const parts: Buffer[] = [head];
  if (key) {
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', key.encKey, nonce);
    c.setAAD(Buffer.concat([head, aad]));
    parts.push(nonce, c.update(payload), c.final(), c.getAuthTag());
  } else {
    parts.push(payload);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** The store host's check (no key needed): the trailing sha256 matches. Returns a problem or null. */
export function checkObject(obj: Buffer): string | null {
  if (obj.length < HEAD + SUM) return `truncated (${obj.length} bytes)`;
  if (!obj.subarray(0, 4).equals(MAGIC)) return 'not a tsmigrate object (bad magic)';
  if (obj[4] !== 1) return `unknown object version ${obj[4]}`;
  const body = obj.subarray(0, obj.length - SUM);
  if (!createHash('sha256').update(body).digest().equals(obj.subarray(obj.length - SUM))) return 'checksum mismatch (the stored bytes changed)';
  return null;
}

export function isEncrypted(obj: Buffer): boolean {
  return obj.length > 5 && ((obj[5] ?? 0) & F_GCM) !== 0;
}

/** Check, decrypt and decompress; throws EINTEGRITY naming `what` on any mismatch. */
export function decodeObject(obj: Buffer, aad: Buffer, key: StoreKey | null, what: string): Buffer {
  const fail = (why: string) =>
    new TsmError('EINTEGRITY', `${what} is corrupted: ${why}`, { fix: 'nothing was changed; use another checkpoint (tsmigrate store verify shows which are good)' });
  const problem = checkObject(obj);
  if (problem) throw fail(problem);
  const head = obj.subarray(0, HEAD);
  const flags = obj[5] ?? 0;
  const plainLen = head.readUInt32BE(6);
  if (plainLen > MAX_OBJECT_PLAIN) throw fail(`claims ${plainLen} bytes`);
  let payload = obj.subarray(HEAD, obj.length - SUM);
  if (flags & F_GCM) {
    if (!key) {
      throw new TsmError('EINVAL_ARG', `${what} is encrypted`, { fix: 'give the store\'s key with --encrypt-key FILE' });
    }
    if (payload.length < NONCE + TAG) throw fail('truncated ciphertext');
    const d = createDecipheriv('aes-256-gcm', key.encKey, payload.subarray(0, NONCE));
    d.setAAD(Buffer.concat([head, aad]));
    d.setAuthTag(payload.subarray(payload.length - TAG));
    try {
      payload = Buffer.concat([d.update(payload.subarray(NONCE, payload.length - TAG)), d.final()]);
    } catch {
      throw fail('authentication failed (wrong key, or the object was altered)');
    }
  } else if (key) {
    throw fail('not encrypted, but the store is');
  }
  let plain = payload;
  if (flags & F_ZSTD) {
    try {
      plain = decompress(payload);
    } catch {
      throw fail('zstd data is damaged');
    }
  }
  if (plain.length !== plainLen) throw fail(`${plain.length} bytes, the header says ${plainLen}`);
  return plain;
}
