/**
 * The one signature check, and signing as this host. Every checkpoint (an
 * archive, a store snapshot) and every move carries a signature; import,
 * restore, DR restore and a peer's restore all call `verify`, which accepts a
 * signature only from this host's own key or a key the config trusts, or, once
 * and loudly, from the signer `--trust-signer` names.
 */
import { statSync } from 'node:fs';
import { loadHostsConfig } from '../hosts/config.js';
import { TsmError } from '../errors/errors.js';
import type { Logger } from '../util/logger.js';
import { ensureHostKey, keyFiles, readHostKey } from './host-key.js';
import { formatPublicKey, isFingerprint, type PublicKey } from './public-key.js';
import { checkSignatureBytes, parseSignature, signBytes, type Purpose, type SignatureRecord } from './signature.js';

export interface Signer {
  key: PublicKey;
  /** how it came to be accepted */
  by: 'own' | 'config' | 'override';
}

export interface Signing {
  /** This host's signature over `bytes` (its key is made on first need). */
  sign(purpose: Purpose, bytes: Uint8Array): Promise<SignatureRecord>;
  /**
   * Throws unless `sig` is a good signature over exactly `bytes` by a trusted
   * key: EUNTRUSTED (unsigned, or an untrusted signer, named with the fix) or
   * EINTEGRITY (changed after signing). `what` names the thing ("checkpoint X").
   */
  verify(purpose: Purpose, bytes: Uint8Array, sig: unknown, what: string): Promise<Signer | null>;
}

/** --trust-signer: a fingerprint accepted for one command, or "unsigned". */
export type TrustOverride = { fingerprint: string } | { unsigned: true } | null;

export function parseTrustOverride(v: string | undefined): TrustOverride {
  if (v === undefined) return null;
  if (v === 'unsigned') return { unsigned: true };
  if (!isFingerprint(v)) {
    throw new TsmError('EINVAL_ARG', `invalid --trust-signer ${JSON.stringify(v.slice(0, 80))}`, {
      fix: 'give the signer\'s fingerprint as the refusal printed it (SHA256:...), or "unsigned"',
    });
  }
  return { fingerprint: v };
}

export interface HostSigningOptions {
  root: string;
  /** the hosts config that lists the trusted keys */
  configFile: string;
  override: TrustOverride;
  logger: Logger;
}

export function hostSigning(o: HostSigningOptions): Signing {
  // read again only when the key file changes (key init --force under a running daemon): a move signs inside its downtime
  let key: { stamp: string; key: ReturnType<typeof ensureHostKey> } | undefined;
  // the trusted fingerprints, read again whenever the key or the config file changes (a peer checks inside the downtime)
  let cache: { stamp: string; own: string | undefined; config: Set<string> } | undefined;
  // synchronous: two stats cost microseconds, a trip through libuv's pool on a loaded host milliseconds
  const stampOf = (file: string) => {
    const st = statSync(file, { throwIfNoEntry: false });
    return st ? `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}` : '-';
  };
  const trusted = async (fingerprint: string): Promise<'own' | 'config' | undefined> => {
    const stamp = `${stampOf(keyFiles(o.root).private)}|${stampOf(o.configFile)}`;
    if (cache?.stamp !== stamp) {
      const own = (await readHostKey(o.root))?.publicKey.fingerprint;
      const cfg = await loadHostsConfig(o.configFile);
      cache = { stamp, own, config: new Set(cfg.trust.map((k) => k.fingerprint)) };
    }
    return cache.own === fingerprint ? 'own' : cache.config.has(fingerprint) ? 'config' : undefined;
  };
  return {
    async sign(purpose, bytes) {
      const stamp = stampOf(keyFiles(o.root).private);
      if (key?.stamp !== stamp || stamp === '-') {
        const loading = ensureHostKey(o.root);
        // the stamp of the file the key came from (made just now when missing)
        key = { stamp: stamp === '-' ? 'new' : stamp, key: loading };
        loading.catch(() => (key = undefined));
      }
      return signBytes(await key.key, purpose, bytes);
    },
    async verify(purpose, bytes, sig, what) {
      if (sig === null || sig === undefined) {
        if (o.override && 'unsigned' in o.override) {
          o.logger.warn(`${what} is not signed; accepted once because of --trust-signer unsigned`);
          return null;
        }
        throw new TsmError('EUNTRUSTED', `${what} is not signed, so where it came from cannot be told`, {
          fix: 'nothing was changed; take it again from a host running this tsmigrate (it signs), or accept it once with --trust-signer unsigned',
        });
      }
      const rec = parseSignature(sig, what);
      const key = checkSignatureBytes(rec, purpose, bytes, what);
      const by = await trusted(key.fingerprint);
      if (by) return { key, by };
      if (o.override && 'fingerprint' in o.override && o.override.fingerprint === key.fingerprint) {
        o.logger.warn(`${what} is signed by ${key.fingerprint} (${key.comment}), which ${o.configFile} does not trust; accepted once because of --trust-signer`);
        return { key, by: 'override' };
      }
      throw untrusted(what, key, o.configFile);
    },
  };
}

export function untrusted(what: string, key: PublicKey, configFile: string): TsmError {
  return new TsmError('EUNTRUSTED', `${what} is signed by ${key.fingerprint} (${key.comment}), a key this host does not trust (${configFile})`, {
    fix: `nothing was changed; if that host is yours, trust it: tsmigrate key trust '${formatPublicKey(key)}' (or accept it once with --trust-signer ${key.fingerprint})`,
  });
}
