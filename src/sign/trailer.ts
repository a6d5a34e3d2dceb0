import type { SignatureRecord } from './signature.js';

/**
 * A signature carried after the bytes it covers:
 *   body | signature JSON | u32 BE its length | "TSMSIG01"
 * (store snapshots, an unencrypted store's index). The signature itself is
 * checked by the caller (Signing.verify) over the exact body returned here.
 */
const MAGIC = Buffer.from('TSMSIG01');
const MAX_SIGNATURE = 4096;

export function withSignature(body: Buffer, signature: SignatureRecord | null | undefined): Buffer {
  if (!signature) return body;
  const sig = Buffer.from(JSON.stringify(signature));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(sig.length);
  return Buffer.concat([body, sig, len, MAGIC]);
}

/** Split off a trailer; no trailer gives signature null. `bad` makes the error for a damaged one. */
export function splitSignature(plain: Buffer, bad: (what: string) => Error): { body: Buffer; signature: unknown } {
  if (plain.length < 12 || !plain.subarray(plain.length - 8).equals(MAGIC)) return { body: plain, signature: null };
  const n = plain.readUInt32BE(plain.length - 12);
  if (n > MAX_SIGNATURE || n + 12 > plain.length) throw bad('truncated signature');
  try {
    return { body: plain.subarray(0, plain.length - 12 - n), signature: JSON.parse(plain.subarray(plain.length - 12 - n, plain.length - 12).toString('utf8')) };
  } catch {
    throw bad('the signature is not JSON');
  }
}
