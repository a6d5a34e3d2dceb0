import path from 'node:path';
import { trustKey } from '../../src/hosts/config.js';
import { ensureHostKey } from '../../src/sign/host-key.js';
import { formatPublicKey } from '../../src/sign/public-key.js';

/** The config a rig host's agent reads (local-hosts.sh sets TSMIGRATE_CONFIG to it). */
export const peerConfigOf = (root: string): string => path.join(root, 'config.yaml');

/** Make the host whose config is `peerConfig` trust the signing key of `sourceRoot` (made there if missing). */
export async function trustRoot(peerConfig: string, sourceRoot: string): Promise<void> {
  const k = await ensureHostKey(sourceRoot);
  await trustKey(peerConfig, formatPublicKey(k.publicKey));
}
