import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { PreflightRequest, PreflightResult } from '../agent/api.js';
import { spaceLine } from '../agent/peer-space.js';
import { MAX_OOM_RECORD_BYTES, OOM_FILE, listLogFiles, logPolicyOf } from '../container/log-files.js';
import type { ContainerView } from '../container/types.js';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { DirHandle } from '../archive/dir-handle.js';
import { planLogsBase } from '../transfer/container-logs.js';
import type { SourceFacts } from './source.js';

const BLOCK = 4096;

/**
 * Bytes the files under `dir` take on a filesystem: each file rounded up to
 * whole blocks, a block per directory. Read beneath open directories
 * (archive/dir-handle.ts): the running container's upper layer cannot point the
 * walk at the host's tree by swapping a directory for a link.
 */
export async function diskBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: DirHandle): Promise<void> => {
    for (const e of await fs.readdir(d.self(), { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) {
        total += BLOCK;
        const sub = await d.openDir(e.name).catch(() => undefined);
        if (!sub) continue;
        try {
          await walk(sub);
        } finally {
          await sub.close();
        }
      } else {
        total += Math.ceil((await fs.lstat(d.at(e.name)).catch(() => ({ size: 0 }))).size / BLOCK) * BLOCK;
      }
    }
  };
  const top = await DirHandle.open(dir).catch(() => undefined);
  if (!top) return 0;
  try {
    await walk(top);
  } finally {
    await top.close();
  }
  return total;
}

/** The bytes of the container's log files and OOM record a move sends (transfer/container-logs.ts). */
async function logBytes(dir: string, view: ContainerView): Promise<number> {
  const files = await listLogFiles(dir);
  const oom = await fs.lstat(path.join(dir, OOM_FILE)).catch(() => undefined);
  if (oom?.isFile() && oom.size <= MAX_OOM_RECORD_BYTES) files.push({ name: OOM_FILE, ino: oom.ino, size: oom.size });
  return planLogsBase(files, logPolicyOf(view.config)).parts.reduce((a, p) => a + p.bytes, 0);
}

/** The source's figures of what the peer will hold (the memory is the cgroup's, read by the caller). */
export async function spaceFacts(rt: Runtime, view: ContainerView, imageRootfs: string): Promise<{ upperBytes: number; logBytes: number; imageBytes: number }> {
  return {
    upperBytes: await diskBytes(view.state.rootfs.upper),
    logBytes: await logBytes(rt.paths.container(view.config.name), view),
    imageBytes: await diskBytes(imageRootfs),
  };
}

/**
 * The pre-flight question the source asks the peer, for `move` and for `host
 * check` alike: the same figures, so both get the same answer and numbers.
 */
export function preflightAsk(
  f: Pick<SourceFacts, 'config' | 'network' | 'cpuinfo' | 'memoryBytes' | 'upperBytes' | 'logBytes' | 'imageBytes'>,
  o: Pick<PreflightRequest, 'leaseOwner' | 'epoch'>,
): PreflightRequest {
  return {
    name: f.config.name, config: f.config, network: f.network, cpuinfo: f.cpuinfo,
    memoryBytes: f.memoryBytes, upperBytes: f.upperBytes, logBytes: f.logBytes, imageBytes: f.imageBytes,
    leaseOwner: o.leaseOwner, epoch: o.epoch,
  };
}

/** The move's refusal when the peer's pre-flight found problems: every problem and every fix, on one line. */
export function preflightRefusal(host: string, name: string, pre: PreflightResult): TsmError | undefined {
  if (pre.ok) return undefined;
  const p = pre.problems;
  return new TsmError('EPREFLIGHT', `${host} cannot take "${name}": ${p.map((x) => x.message).join('; ')}`, { fix: p.map((x) => x.fix).join('; ') });
}

/** The space lines of a pre-flight, for `host check` and the move's log. */
export function spaceLines(pre: PreflightResult): string[] {
  return (pre.space ?? []).map(spaceLine);
}

/** A peer's error as the move reports it: a full disk on the peer names the host it happened on. */
export function namedPeerError(host: string, e: Error): Error {
  if (!(e instanceof TsmError) || e.code !== 'ENOSPC') return e;
  return new TsmError('ENOSPC', `${host}: ${e.message}`, { ...(e.fix ? { fix: e.fix } : {}), cause: e });
}
