import { connectAgent } from '../agent/protocol/rpc.js';
import { getHost, knownHostsFilesFor, loadHostsConfig } from '../hosts/config.js';
import { connectSsh } from '../ssh/connect.js';
import type { Logger } from '../util/logger.js';
import type { PeerConnection } from './move.js';

/** How long closing the agent's channel may take before the SSH session is cut. */
const CLOSE_MS = 3000;

/**
 * The production peer: an SSH connection (strict host keys) to the host from
 * the config, running `<command> agent --stdio` there, spoken to over the
 * agent protocol. Opened before anything is frozen.
 */
export function sshPeer(configFile: string, hostName: string, o: { signal?: AbortSignal; logger?: Logger } = {}): () => Promise<PeerConnection> {
  return async () => {
    const cfg = await loadHostsConfig(configFile);
    const host = getHost(cfg, hostName);
    const session = await connectSsh(host, {
      knownHostsFiles: knownHostsFilesFor(cfg, host),
      trustOnFirstUse: host.trustOnFirstUse,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
    });
    try {
      const channel = await session.exec([...host.command, 'agent', '--stdio']);
      channel.stderr.on('data', (d: Buffer) => o.logger?.debug(`${hostName}: ${d.toString().trimEnd()}`));
      const client = await connectAgent(channel, { peerName: hostName, ...(o.signal ? { signal: o.signal } : {}), ...(o.logger ? { logger: o.logger } : {}) });
      return {
        agent: client,
        close: async () => {
          // bounded: a channel whose far end never confirms the close must not hold the mover
          let t: NodeJS.Timeout | undefined;
          await Promise.race([client.close().catch(() => undefined), new Promise<void>((r) => (t = setTimeout(r, CLOSE_MS)))]);
          clearTimeout(t);
          session.close();
        },
      };
    } catch (e) {
      session.close();
      throw e;
    }
  };
}
