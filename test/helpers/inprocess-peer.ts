import { LocalAgent } from '../../src/agent/server.js';
import type { PeerConnection } from '../../src/move/move.js';
import { createRuntime } from '../../src/runtime/context.js';
import { peerConfigOf } from './trust.js';

/** The go-criu phaul trick: the peer's agent object called in-process as the Remote. */
/** The peer reads the keys it trusts from <peerRoot>/config.yaml (trust.ts trustRoot). */
export function inProcessPeer(peerRoot: string, env: NodeJS.ProcessEnv = process.env): { connect: () => Promise<PeerConnection>; agent: LocalAgent } {
  const agent = new LocalAgent(createRuntime({ root: peerRoot, env, configFile: peerConfigOf(peerRoot) }), 'test');
  return {
    agent,
    connect: async () => ({ agent, close: async () => undefined }),
  };
}
