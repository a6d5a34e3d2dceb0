import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { compress } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { TsmError } from '../errors/errors.js';
import { chunkId, type StoreKey } from './keys.js';

/**
 * One stored object (a chunk, a snapshot's metadata, the index), format 2:
 *
 *   plain:      "TSMO" | 2 | flags (1 = zstd) | plain length u32 BE | payload | sha256 (32)
 *   encrypted:  "TSMO" | 2 | flags = 2        | nonce 12 | AES-256-GCM(inner) | tag 16 | sha256 (32)
 *     inner:    zstd? u8 | plain length u32 BE | payload length u32 BE | payload | zeros (Padmé)
 *
 * The trailing sha256 is for the store host (no key): it finds bit rot and
 * truncation, nothing more, since anyone can recompute it. What proves an
 * object is the GCM tag under the store's key, with the header and the
 * object's name as additional data (objects cannot be swapped); an
 * unencrypted chunk is proved by its id, the sha256 of its content, which the
 * (signed) snapshot metadata lists. An encrypted object shows neither its
 * length nor whether it compressed: both are inside, and the ciphertext is
 * padded to a Padmé length (at most ~12% larger, few distinct sizes).
 */
const MAGIC = Buffer.from('TSMO');
export const OBJECT_VERSION = 2;
const HEAD = 6;
const PLAIN_HEAD = 10;
const INNER_HEAD = 9;
const NONCE = 12;
const TAG = 16;
const SUM = 32;
const F_ZSTD = 1;
const F_GCM = 2;
export const MAX_OBJECT_PLAIN = 64 << 20;

/** Padmé (Nikitin et al., PURBs): the length rounded up so that it leaks O(log log L) bits. */
export function padme(len: number): number {
  if (len < 2) return len;
  const e = Math.floor(Math.log2(len));
  const s = Math.floor(Math.log2(e)) + 1;
  const step = 2 ** (e - s);
  return Math.ceil(len / step) * step;
}

function squeeze(plain: Buffer, level: number): { payload: Buffer; zstd: boolean } {
  if (plain.length >= 64) {
    const z = compress(plain, { compressionLevel: level });
    if (z.length < plain.length * 0.97) return { payload: z, zstd: true };
  }
  return { payload: plain, zstd: false };
}

export function encodeObject(plain: Buffer, aad: Buffer, key: StoreKey | null, level = 1): Buffer {
  const { payload, zstd } = squeeze(plain, level);
  let body: Buffer;
  if (key) {
    const head = Buffer.from([...MAGIC, OBJECT_VERSION, F_GCM]);
    const inner = Buffer.alloc(padme(INNER_HEAD + payload.length));
    inner[0] = zstd ? F_ZSTD : 0;
    inner.writeUInt32BE(plain.length, 1);
    inner.writeUInt32BE(payload.length, 5);
    payload.copy(inner, INNER_HEAD);
    const nonce = randomBytes(NONCE);
    const c = createCipheriv('aes-256-gcm', key.encKey, nonce);
    c.setAAD(Buffer.concat([head, aad]));
    body = Buffer.concat([head, nonce, c.update(inner), c.final(), c.getAuthTag()]);
  } else {
    const head = Buffer.alloc(PLAIN_HEAD);
    MAGIC.copy(head, 0);
    head[4] = OBJECT_VERSION;
    head[5] = zstd ? F_ZSTD : 0;
    head.writeUInt32BE(plain.length, 6);
    body = Buffer.concat([head, payload]);
  }
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** The store host's check (no key, no authentication): the trailing sha256 matches. Returns a problem or null. */
export function checkObject(obj: Buffer): string | null {
  if (obj.length < HEAD + SUM) return `truncated (${obj.length} bytes)`;
  if (!obj.subarray(0, 4).equals(MAGIC)) return 'not a tsmigrate object (bad magic)';
  if (obj[4] !== OBJECT_VERSION) return `unknown object version ${obj[4]}`;
  const body = obj.subarray(0, obj.length - SUM);
  if (!createHash('sha256').update(body).digest().equals(obj.subarray(obj.length - SUM))) return 'checksum mismatch (the stored bytes changed)';
  return null;
}

export function isEncrypted(obj: Buffer): boolean {
  return obj.length > 5 && ((obj[5] ?? 0) & F_GCM) !== 0;
}

let dctx: InstanceType<typeof binding.DCtx> | undefined;

function unzstd(payload: Buffer, plainLen: number, fail: (why: string) => TsmError): Buffer {
  // a frame may claim any size: it is decompressed into exactly the bytes the (bounded) header says
  const out = Buffer.alloc(plainLen);
  let n: number;
  try {
    n = (dctx ??= new binding.DCtx()).decompress(out, payload);
  } catch {
    throw fail('zstd data is damaged or larger than its header says');
  }
  if (n !== plainLen) throw fail(`${n} bytes, the header says ${plainLen}`);
  return out;
}

/**
 * Check, authenticate (with the key), decrypt and decompress; throws
 * EINTEGRITY naming `what` on any mismatch, EINVAL_ARG when the key is missing.
 */
export function decodeObject(obj: Buffer, aad: Buffer, key: StoreKey | null, what: string): Buffer {
  const fail = (why: string) =>
    new TsmError('EINTEGRITY', `${what} is corrupted: ${why}`, { fix: 'nothing was changed; use another checkpoint (tsmigrate store verify shows which are good)' });
  const problem = checkObject(obj);
  if (problem) throw fail(problem);
  const flags = obj[5] ?? 0;
  if (flags & F_GCM) {
    if (!key) throw new TsmError('EINVAL_ARG', `${what} is encrypted`, { fix: 'give the store\'s key with --encrypt-key FILE' });
    if (flags !== F_GCM) throw fail(`unknown flags ${flags}`);
    const sealed = obj.subarray(HEAD, obj.length - SUM);
    if (sealed.length < NONCE + INNER_HEAD + TAG) throw fail('truncated ciphertext');
    const d = createDecipheriv('aes-256-gcm', key.encKey, sealed.subarray(0, NONCE));
    d.setAAD(Buffer.concat([obj.subarray(0, HEAD), aad]));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    let inner: Buffer;
    try {
      inner = Buffer.concat([d.update(sealed.subarray(NONCE, sealed.length - TAG)), d.final()]);
    } catch {
      throw fail('authentication failed (wrong key, or the object was altered or swapped)');
    }
    // authenticated from here on: a mismatch is a bug or a wrong key's lucky tag, never trusted
    const plainLen = inner.readUInt32BE(1);
    const payLen = inner.readUInt32BE(5);
    if (plainLen > MAX_OBJECT_PLAIN || INNER_HEAD + payLen > inner.length || (inner[0]! & ~F_ZSTD) !== 0) throw fail('inner header is invalid');
    const payload = inner.subarray(INNER_HEAD, INNER_HEAD + payLen);
    if (inner[0]! & F_ZSTD) return unzstd(payload, plainLen, fail);
    if (payLen !== plainLen) throw fail(`${payLen} bytes, the header says ${plainLen}`);
    return Buffer.from(payload);
  }
  if (key) throw fail('not encrypted, but the store is');
  if (flags & ~F_ZSTD) throw fail(`unknown flags ${flags}`);
  if (obj.length < PLAIN_HEAD + SUM) throw fail('truncated');
  const plainLen = obj.readUInt32BE(6);
  if (plainLen > MAX_OBJECT_PLAIN) throw fail(`claims ${plainLen} bytes`);
  const payload = obj.subarray(PLAIN_HEAD, obj.length - SUM);
  if (flags & F_ZSTD) return unzstd(payload, plainLen, fail);
  if (payload.length !== plainLen) throw fail(`${payload.length} bytes, the header says ${plainLen}`);
  return payload;
}

/** A chunk as the reader takes it: decoded (authenticated with the key) and its content matching its id. */
export function decodeChunk(obj: Buffer, id: Buffer, key: StoreKey | null, what: string): Buffer {
  const plain = decodeObject(obj, id, key, what);
  if (!chunkId(plain, key).equals(id)) {
    throw new TsmError('EINTEGRITY', `${what} does not match its id`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
  }
  return plain;
}
