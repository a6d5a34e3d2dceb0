import { promises as fs } from 'node:fs';
import path from 'node:path';
import { packTreeToFile } from '../archive/pack.js';
import type { Runtime } from '../runtime/context.js';
import { fsyncDir, writeFileAtomic } from '../state/atomic.js';
import { hashFile } from '../util/hash.js';
import { checkpointInfo, withCapture } from './capture.js';
import { sweepCheckpointLeftovers } from './leftovers.js';
import { CHECKPOINT_FORMAT, type CheckpointManifest } from './manifest.js';
import { CheckpointStore, MANIFEST_FILE, SIGNATURE_FILE } from './store.js';

export interface CheckpointRequest {
  name: string;
  stop: boolean;
  tcpEstablished: boolean;
  fileLocks: boolean;
  tag?: string;
}

export interface CheckpointResult {
  manifest: CheckpointManifest;
  dir: string;
}

/**
 * Freeze the container through its freezer cgroup, dump it with CRIU (which is
 * handed the frozen cgroup), copy the upper layer while still frozen, then thaw
 * (or, with stop, let CRIU kill it). Compression, hashing and storing happen
 * after the thaw. A dump CRIU refuses leaves the container running and thawed
 * and records nothing.
 */
export async function checkpointContainer(rt: Runtime, req: CheckpointRequest): Promise<CheckpointResult> {
  return withCapture(rt, req, async (cap, criu) => {
    const { id } = cap;
    const store = new CheckpointStore(rt.paths, rt.signing);
    const tp = performance.now();
    const out = path.join(store.dir, `.tmp-${id}`);
    await fs.mkdir(store.dir, { recursive: true, mode: 0o700 });
    await sweepCheckpointLeftovers(store.dir);
    await fs.mkdir(out, { mode: 0o700 });
    await fs.copyFile(path.join(cap.images, 'dump.log'), path.join(out, 'dump.log'));
    const [log, criuBlob, upperBlob] = await Promise.all([
      hashFile(path.join(out, 'dump.log')),
      packTreeToFile(cap.images, path.join(out, 'criu.tar.zst'), { zstd: 1 }),
      packTreeToFile(cap.upper, path.join(out, 'upper.tar.zst'), { zstd: 3 }),
    ]);
    const packMs = performance.now() - tp;
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      ...checkpointInfo(cap, criu, req, { packMs, tag: req.tag ?? null }),
      blobs: {
        criu: { file: 'criu.tar.zst', sha256: criuBlob.sha256, size: criuBlob.bytes, compression: 'zstd', entries: criuBlob.entries, tarBytes: criuBlob.tarBytes },
        upper: { file: 'upper.tar.zst', sha256: upperBlob.sha256, size: upperBlob.bytes, compression: 'zstd', entries: upperBlob.entries, tarBytes: upperBlob.tarBytes },
        log: { file: 'dump.log', sha256: log.sha256, size: log.size, compression: 'none' },
      },
    };
    // the signature is over these exact bytes, as stored
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    await writeFileAtomic(path.join(out, MANIFEST_FILE), bytes, 0o600);
    await writeFileAtomic(path.join(out, SIGNATURE_FILE), `${JSON.stringify(await rt.signing.sign('checkpoint', bytes))}\n`, 0o600);
    for (const f of await fs.readdir(out)) await fs.chmod(path.join(out, f), 0o600);
    await fs.rename(out, store.path(id));
    await fsyncDir(store.dir);
    return { manifest, dir: store.path(id) };
  });
}

