import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION, type HelloResult, type PreflightResult } from '../agent/api.js';
import { loadView } from '../container/view.js';
import { locateCriu } from '../criu/binary.js';
import { criuCpuinfoDump } from '../criu/cpuinfo.js';
import type { Runtime } from '../runtime/context.js';
import type { PeerConnection } from './move.js';
import { preflightAsk, spaceFacts } from './peer-check.js';
import { resolveImage } from '../image/store.js';

/**
 * `tsmigrate host check HOST [NAME]`: the move's pre-flight on its own, with
 * nothing frozen and nothing created. Without NAME: can the peer take moves at all.
 */
export async function hostCheck(rt: Runtime, name: string | undefined, connect: () => Promise<PeerConnection>): Promise<{ hello: HelloResult; preflight: PreflightResult | null }> {
  const conn = await connect();
  try {
    const hello = await conn.agent.hello({ protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '1' });
    if (!name) return { hello, preflight: null };
    const view = await loadView(rt, name);
    const criu = await locateCriu(rt.tools.criu);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-check-'));
    try {
      await criuCpuinfoDump(criu, dir);
      const cpuinfo = (await fs.readFile(path.join(dir, 'cpuinfo.img'))).toString('base64');
      const stats = await rt.cgroups(name).stats().catch(() => ({ memoryBytes: 0 }));
      const sameMachine = hello.hostname === os.hostname() && hello.root !== rt.paths.root;
      const image = await resolveImage(rt.paths, view.config.image.digest);
      const facts = { config: view.config, network: view.state.network ?? null, cpuinfo, memoryBytes: stats.memoryBytes ?? 0, ...(await spaceFacts(rt, view, image.rootfs)) };
      const preflight = await conn.agent.preflight(preflightAsk(facts, { leaseOwner: sameMachine ? { root: rt.paths.root, container: name } : null, epoch: (view.state.epoch ?? 0) + 1 }));
      return { hello, preflight };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}
