import type { Command } from 'commander';
import { resolveConfigPath } from '../hosts/config.js';
import { sshPeer } from '../move/connect.js';
import { settlePendingAborts } from '../move/recover.js';
import type { Runtime } from '../runtime/context.js';

/**
 * Before a command touches a container: deliver the abort an earlier move of
 * it could not (the peer still holds a partial copy). Quick when there is
 * none (one directory read); never fails the command.
 */
export async function settleBefore(cmd: Command, rt: Runtime, name: string): Promise<void> {
  const g = cmd.optsWithGlobals<{ config?: string }>();
  for (const a of await settlePendingAborts(rt, (h) => sshPeer(resolveConfigPath(g.config), h, { logger: rt.logger })(), name).catch(() => [])) {
    rt.logger.info(`move ${a.migration} of ${a.container}: ${a.action}: ${a.detail}`);
  }
}
