/**
 * Host public keys as one line of text (pure):
 *
 *   tsmigrate-ed25519 <base64 of the 32-byte Ed25519 key> [comment]
 *
 * and their fingerprint, as OpenSSH prints one: SHA256:<unpadded base64 of sha256(key)>.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { TsmError } from '../errors/errors.js';

export const KEY_TYPE = 'tsmigrate-ed25519';
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32 bytes follow */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;
const COMMENT = /^[\x21-\x7e]{1,64}$/;

export interface PublicKey {
  /** the raw 32 bytes */
  raw: Buffer;
  comment: string;
  fingerprint: string;
}

export function fingerprintOf(raw: Buffer): string {
  return `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
}

export function isFingerprint(s: string): boolean {
  return FINGERPRINT.test(s);
}

export function rawOf(key: KeyObject): Buffer {
  const der = key.export({ type: 'spki', format: 'der' });
  return Buffer.from(der.subarray(SPKI_PREFIX.length));
}

export function keyObjectOf(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function publicKeyOf(raw: Buffer, comment: string): PublicKey {
  return { raw, comment, fingerprint: fingerprintOf(raw) };
}

export function formatPublicKey(k: PublicKey): string {
  return `${KEY_TYPE} ${k.raw.toString('base64')} ${k.comment}`;
}

/** A comment (a host name, say) made safe for the one-line form: printable ASCII, no spaces, at most 64. */
export function keyComment(s: string): string {
  const c = s.replace(/[^\x21-\x7e]/g, '_').slice(0, 64);
  return c || 'tsmigrate';
}

/** Parse one public key line; throws EINVAL_ARG naming what is wrong. */
export function parsePublicKey(line: string): PublicKey {
  const fix = `give the line tsmigrate key show prints on that host (${KEY_TYPE} BASE64 COMMENT)`;
  const bad = (why: string) => new TsmError('EINVAL_ARG', `not a tsmigrate public key: ${why}`, { fix });
  const words = line.trim().split(/[ \t]+/);
  if (line.length > 256 || words.length < 2 || words.length > 3) throw bad('expected 2 or 3 words on one line');
  const [type, b64, comment] = words as [string, string, string | undefined];
  if (type !== KEY_TYPE) throw bad(`type ${JSON.stringify(type.slice(0, 32))}, not ${KEY_TYPE}`);
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64)) throw bad('the key is not 32 bytes of base64');
  if (comment !== undefined && !COMMENT.test(comment)) throw bad('the comment must be printable ASCII without spaces (at most 64)');
  const raw = Buffer.from(b64, 'base64');
  try {
    keyObjectOf(raw);
  } catch {
    throw bad('not an Ed25519 public key');
  }
  return publicKeyOf(raw, comment ?? 'unnamed');
}
