import { LocalAgent } from '../../src/agent/server.js';
import type { PeerConnection } from '../../src/move/move.js';
import { createRuntime } from '../../src/runtime/context.js';

/** The go-criu phaul trick: the peer's agent object called in-process as the Remote. */
export function inProcessPeer(peerRoot: string, env: NodeJS.ProcessEnv = process.env): { connect: () => Promise<PeerConnection>; agent: LocalAgent } {
  const agent = new LocalAgent(createRuntime({ root: peerRoot, env }), 'test');
  return {
    agent,
    connect: async () => ({ agent, close: async () => undefined }),
  };
}
