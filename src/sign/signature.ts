/**
 * A detached signature: which key signed what, over exact bytes (never a
 * re-serialisation). The signed message is
 *   "tsmigrate-signature/1\0" PURPOSE "\0" BYTES
 * so that a signature made for one purpose (a checkpoint's manifest, a move's
 * statement) can never pass for another.
 */
import { sign as edSign, verify as edVerify } from 'node:crypto';
import { lit, obj, oneOf, str, type Validator } from '../agent/protocol/validate.js';
import { TsmError } from '../errors/errors.js';
import type { HostKey } from './host-key.js';
import { formatPublicKey, keyObjectOf, parsePublicKey, type PublicKey } from './public-key.js';

export const SIGNATURE_FORMAT = 'tsmigrate-signature/1';
export const PURPOSES = ['checkpoint', 'move-begin', 'move-sums', 'store-index'] as const;
export type Purpose = (typeof PURPOSES)[number];

export interface SignatureRecord {
  format: typeof SIGNATURE_FORMAT;
  purpose: Purpose;
  /** the signer's public key line */
  key: string;
  /** 64 bytes, base64 */
  signature: string;
}

export const signatureRecord: Validator<SignatureRecord> = obj<SignatureRecord>({
  format: lit(SIGNATURE_FORMAT),
  purpose: oneOf(...PURPOSES.map((p) => lit(p))),
  key: str({ max: 256, pattern: /^tsmigrate-ed25519 [A-Za-z0-9+/]{43}= [\x21-\x7e]{1,64}$/ }),
  signature: str({ max: 88, min: 88, pattern: /^[A-Za-z0-9+/]{86}==$/ }),
});

function message(purpose: Purpose, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${SIGNATURE_FORMAT}\0${purpose}\0`), bytes]);
}

export function signBytes(key: HostKey, purpose: Purpose, bytes: Uint8Array): SignatureRecord {
  return { format: SIGNATURE_FORMAT, purpose, key: formatPublicKey(key.publicKey), signature: edSign(null, message(purpose, bytes), key.privateKey).toString('base64') };
}

/** Parse a record (from a file or the wire) strictly; throws EUNTRUSTED naming `what`. */
export function parseSignature(value: unknown, what: string): SignatureRecord {
  try {
    return signatureRecord(value, 'signature');
  } catch (e) {
    throw new TsmError('EUNTRUSTED', `${what} carries a malformed signature (${(e as Error).message.replace(/^bad message: /, '')})`, {
      fix: 'nothing was changed; take it again from the host that made it',
    });
  }
}

/** The signer's key when the signature is good for exactly these bytes; throws EINTEGRITY otherwise. */
export function checkSignatureBytes(rec: SignatureRecord, purpose: Purpose, bytes: Uint8Array, what: string): PublicKey {
  const key = parsePublicKey(rec.key);
  const good = rec.purpose === purpose && edVerify(null, message(purpose, bytes), keyObjectOf(key.raw), Buffer.from(rec.signature, 'base64'));
  if (!good) {
    throw new TsmError('EINTEGRITY', `${what} was changed after ${key.fingerprint} signed it (its signature does not match)`, {
      fix: 'nothing was changed here; use another copy, taken again from the host that made it',
    });
  }
  return key;
}
