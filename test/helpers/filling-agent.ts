/**
 * A peer's agent that fills a filesystem right after `begin`: the pre-flight
 * counted the move's bytes and said they fit, then the disk fills (another
 * writer, a growing container). Used as a test host's agent command:
 *
 *   node dist/test/helpers/filling-agent.js --root ROOT --fill FILE --leave BYTES agent --stdio
 *
 * FILE is created with all but BYTES of its filesystem's free space (fallocate).
 */
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { BeginRequest } from '../../src/agent/api.js';
import { serveAgent } from '../../src/agent/protocol/rpc.js';
import { LocalAgent } from '../../src/agent/server.js';
import { createRuntime } from '../../src/runtime/context.js';
import { stderrLogger } from '../../src/util/logger.js';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i > 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`filling-agent: ${name} is required`);
  return v;
}

class FillingAgent extends LocalAgent {
  constructor(root: string, private readonly fill: string, private readonly leave: number) {
    super(createRuntime({ root, logger: stderrLogger(false) }), 'test');
  }
  override async begin(p: BeginRequest): Promise<{ ok: true }> {
    const r = await super.begin(p);
    const st = statfsSync(path.dirname(this.fill));
    const free = Number(st.bavail) * Number(st.bsize);
    if (free > this.leave) execFileSync('fallocate', ['-l', String(free - this.leave), this.fill]);
    return r;
  }
}

const agent = new FillingAgent(arg('--root'), arg('--fill'), Number(arg('--leave')));
const server = serveAgent(Duplex.from({ readable: process.stdin, writable: process.stdout }), agent);
await server.closed;
await agent.onDisconnect();
