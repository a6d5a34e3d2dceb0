import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { TsmError } from '../errors/errors.js';

/**
 * The key of an encrypted store. The key file holds 32 random bytes, raw or as
 * 64 hex digits (`tsmigrate store keygen FILE` writes one). Two keys are
 * derived from it: one encrypts and authenticates objects (AES-256-GCM), one
 * names chunks (HMAC: an encrypted store's chunk ids do not reveal the sha256
 * of their content), one names snapshots (their file names carry no container
 * name or time), and one seeds the chunker's gear table (chunk boundaries, and
 * so chunk lengths, differ from store to store and fingerprint nothing).
 */
export interface StoreKey {
  readonly encKey: Buffer;
  readonly idKey: Buffer;
  readonly nameKey: Buffer;
  readonly gearKey: Buffer;
  /** stored in store.json: proves a key is the store's without revealing it */
  readonly check: string;
}

export function deriveKey(secret: Buffer): StoreKey {
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', secret, Buffer.from('tsmigrate-store/1'), Buffer.from(label), 32));
  const idKey = derive('chunk-id');
  return {
    encKey: derive('chunk-encryption'),
    idKey,
    nameKey: derive('snapshot-name'),
    gearKey: derive('chunker-gear'),
    check: createHmac('sha256', derive('key-check')).update('tsmigrate key check').digest('hex'),
  };
}

export async function loadKeyFile(file: string): Promise<StoreKey> {
  const bad = (why: string) =>
    new TsmError('EINVAL_ARG', `--encrypt-key ${file}: ${why}`, { fix: 'give a file with 32 random bytes (raw or 64 hex digits); tsmigrate store keygen FILE makes one' });
  const st = await fs.stat(file).catch(() => {
    throw bad('no such file');
  });
  if (!st.isFile()) throw bad('not a regular file');
  if ((st.mode & 0o077) !== 0) {
    throw new TsmError('EINVAL_ARG', `--encrypt-key ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)})`, { fix: `chmod 600 ${file}` });
  }
  const raw = await fs.readFile(file);
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return deriveKey(Buffer.from(text, 'hex'));
  if (raw.length === 32) return deriveKey(raw);
  throw bad(`holds ${raw.length} bytes`);
}

/** Name a chunk: sha256 of its content, or HMAC-SHA256 under the store's id key when encrypted. */
export function chunkId(data: Buffer, key: StoreKey | null): Buffer {
  return key ? createHmac('sha256', key.idKey).update(data).digest() : createHash('sha256').update(data).digest();
}

/** The name a snapshot's files have in the store: its id, or in an encrypted store a keyed hash of it (32 hex digits). */
export function snapshotName(id: string, key: StoreKey | null): string {
  return key ? createHmac('sha256', key.nameKey).update(id).digest('hex').slice(0, 32) : id;
}

export function sameCheck(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
