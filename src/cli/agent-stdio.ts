import { Duplex } from 'node:stream';
import { serveAgent } from '../agent/protocol/rpc.js';
import type { Role } from '../agent/roles.js';
import type { TsmError } from '../errors/errors.js';
import type { LocalAgent } from '../agent/server.js';
import { widenPipe } from '../native/native.js';
import type { Logger } from '../util/logger.js';

/**
 * Serve an agent on stdin/stdout until the source hangs up, then undo what that
 * source left unprepared. Shared by `tsmigrate agent --stdio` and the test-only
 * entry test/helpers/fault-agent.ts, so both run the same peer.
 */
export async function serveAgentOnStdio(agent: LocalAgent, logger: Logger, access: { roles?: readonly Role[]; refuse?: TsmError } = {}): Promise<void> {
  // sshd's pipes: 1 MiB instead of 64 KiB, so that a bulk stream wakes sshd and us 16 times less often
  for (const fd of [0, 1]) widenPipe(fd, 1 << 20);
  const transport = Duplex.from({ readable: process.stdin, writable: process.stdout });
  const server = serveAgent(transport, agent, { logger, ...access });
  await server.closed;
  await agent.onDisconnect();
}
