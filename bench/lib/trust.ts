/**
 * The benchmarks' hosts trust each other's signing keys, as a fleet would
 * (tsmigrate key trust): each runtime reads its trusted keys from its own config.
 */
import { trustKey } from '../../src/hosts/config.js';
import { ensureHostKey } from '../../src/sign/host-key.js';
import { formatPublicKey } from '../../src/sign/public-key.js';

export async function trustEachOther(a: { root: string; configFile: string }, b: { root: string; configFile: string }): Promise<void> {
  await trustKey(b.configFile, formatPublicKey((await ensureHostKey(a.root)).publicKey));
  await trustKey(a.configFile, formatPublicKey((await ensureHostKey(b.root)).publicKey));
}
