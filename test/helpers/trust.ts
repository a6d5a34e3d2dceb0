import path from 'node:path';
import { PROTOCOL_VERSION, type AgentApi, type SignedStatement } from '../../src/agent/api.js';
import { beginStatementText, signStatement, type BeginFacts } from '../../src/move/statement.js';
import type { Runtime } from '../../src/runtime/context.js';
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

/** A begin request signed by `rt`'s own key for `agent`'s connection (its hello's challenge): what a source sends. */
export async function signedBegin<R extends BeginFacts>(rt: Runtime, agent: Pick<AgentApi, 'hello'>, req: R): Promise<R & { signed: SignedStatement }> {
  const { challenge } = await agent.hello({ protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: 'test' });
  return { ...req, signed: await signStatement(rt.signing, 'move-begin', beginStatementText(challenge, req)) };
}
