import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packTreeToFile } from '../archive/pack.js';
import { locateCriu, type CriuBinary } from '../criu/binary.js';
import { stopLocked } from '../container/stop.js';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { fsyncDir, writeJsonAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { validateName } from '../util/name.js';
import { captureLocked, round, type Captured } from './capture.js';
import { CHECKPOINT_FORMAT, type CheckpointManifest } from './manifest.js';
import { CheckpointStore } from './store.js';

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
  validateName('container', req.name);
  if (req.tag !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(req.tag)) {
    throw new TsmError('EINVAL_ARG', `invalid --tag "${req.tag}"`, { fix: 'use 1-64 characters [A-Za-z0-9_.:-]' });
  }
  requireRoot('checkpoint a container');
  const criu = await locateCriu();
  return withLock(rt.store.lockDir(req.name), `container ${req.name}`, async () => {
    const cap = await captureLocked(rt, req, criu);
    const { id } = cap;
    const store = new CheckpointStore(rt.paths);
    try {
      const tp = performance.now();
      const out = path.join(store.dir, `.tmp-${id}`);
      await fs.mkdir(out, { recursive: true, mode: 0o700 });
      await fs.copyFile(path.join(cap.images, 'dump.log'), path.join(out, 'dump.log'));
      const [criuBlob, upperBlob] = await Promise.all([
        packTreeToFile(cap.images, path.join(out, 'criu.tar.zst'), { zstd: 1 }),
        packTreeToFile(cap.upper, path.join(out, 'upper.tar.zst'), { zstd: 3 }),
      ]);
      const packMs = performance.now() - tp;
      const manifest: CheckpointManifest = {
        format: CHECKPOINT_FORMAT,
        ...checkpointInfo(cap, criu, req, { packMs, tag: req.tag ?? null }),
        blobs: {
          criu: { file: 'criu.tar.zst', sha256: criuBlob.sha256, size: criuBlob.bytes, compression: 'zstd', entries: criuBlob.entries },
          upper: { file: 'upper.tar.zst', sha256: upperBlob.sha256, size: upperBlob.bytes, compression: 'zstd', entries: upperBlob.entries },
        },
      };
      await writeJsonAtomic(path.join(out, 'manifest.json'), manifest, 0o600);
      for (const f of await fs.readdir(out)) await fs.chmod(path.join(out, f), 0o600);
      await fs.rename(out, store.path(id));
      await fsyncDir(store.dir);
      if (req.stop) await stopLocked(rt, req.name, 0);
      return { manifest, dir: store.path(id) };
    } finally {
      await cap.cleanup();
    }
  });
}

/** The manifest fields every checkpoint records, whatever store it goes to. */
export function checkpointInfo(
  cap: Captured,
  criu: CriuBinary,
  req: { tcpEstablished: boolean; fileLocks: boolean; stop: boolean },
  o: { packMs: number; tag: string | null },
): Omit<CheckpointManifest, 'format' | 'blobs'> {
  const { state, config } = cap;
  return {
    id: cap.id,
    tag: o.tag,
    createdAt: new Date().toISOString(),
    container: config,
    image: config.image,
    network: state.network ?? null,
    stdio: state.stdio!,
    criu: { version: criu.versionText, options: { tcpEstablished: req.tcpEstablished, fileLocks: req.fileLocks, leaveRunning: !req.stop } },
    host: { kernel: os.release(), arch: os.arch(), hostname: os.hostname() },
    timings: { ...cap.timings, packMs: round(o.packMs), totalMs: round(performance.now() - cap.t0) },
  };
}
