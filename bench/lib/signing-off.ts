/**
 * Signing with the checks off, for the benchmark's "same build, checks off"
 * runs only: injected as the Runtime's Signing (an interface), never chosen by
 * production code. It signs with a fixed placeholder and accepts anything.
 */
import type { Signing } from '../../src/sign/signing.js';
import type { Purpose } from '../../src/sign/signature.js';

const PLACEHOLDER_KEY = `tsmigrate-ed25519 ${Buffer.alloc(32).toString('base64')} checks-off`;
const PLACEHOLDER_SIG = Buffer.alloc(64).toString('base64');

export const checksOff: Signing = {
  sign: async (purpose) => ({ format: 'tsmigrate-signature/1', purpose, key: PLACEHOLDER_KEY, signature: PLACEHOLDER_SIG }),
  verify: async () => null,
};

export interface SigningOp {
  op: 'sign' | 'verify';
  purpose: Purpose;
  ms: number;
}

/** `inner`, with the wall time of every call recorded in `log`. */
export function timedSigning(inner: Signing, log: SigningOp[]): Signing {
  return {
    async sign(purpose, bytes) {
      const t = performance.now();
      try {
        return await inner.sign(purpose, bytes);
      } finally {
        log.push({ op: 'sign', purpose, ms: performance.now() - t });
      }
    },
    async verify(purpose, bytes, sig, what) {
      const t = performance.now();
      try {
        return await inner.verify(purpose, bytes, sig, what);
      } finally {
        log.push({ op: 'verify', purpose, ms: performance.now() - t });
      }
    },
  };
}
