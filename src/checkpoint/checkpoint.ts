import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { packTreeToFile } from '../archive/pack.js';
import { dumpArgv } from '../criu/argv.js';
import { locateCriu } from '../criu/binary.js';
import { criuCpuinfoDump } from '../criu/cpuinfo.js';
import { runCriu } from '../criu/run.js';
import { stopLocked } from '../container/stop.js';
import { assertAllowed, loadView } from '../container/view.js';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { fsyncDir, writeJsonAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { validateName } from '../util/name.js';
import { CHECKPOINT_FORMAT, checkpointId, type CheckpointManifest } from './manifest.js';
import { makeStagingDir, stagingBase } from './staging.js';
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
    const view = await loadView(rt, req.name);
    assertAllowed(view, 'checkpoint');
    if (view.status === 'frozen') {
      throw new TsmError('EBAD_STATE', `container "${req.name}" is frozen by the user`, { fix: `thaw it first: tsmigrate thaw ${req.name}` });
    }
    const { config, state } = view;
    if (!state.initPid || !state.stdio) {
      throw new TsmError('EBAD_STATE', `container "${req.name}" has no recorded init or stdio`, { fix: 'restart it with tsmigrate run' });
    }
    const cg = rt.cgroups(req.name);
    const stats = await cg.stats().catch(() => ({ memoryBytes: 0 }));
    const store = new CheckpointStore(rt.paths);
    const t0 = performance.now();
    const id = checkpointId(req.name, new Date(), randomBytes(3).toString('hex'));
    const staging = await makeStagingDir(stagingBase(rt.paths.root, stats.memoryBytes ?? 0), id);
    const images = path.join(staging, 'images');
    const upperCopy = path.join(staging, 'upper');
    await fs.mkdir(images, { mode: 0o700 });
    const argv = dumpArgv({
      pid: state.initPid,
      imagesDir: images,
      logFile: 'dump.log',
      leaveRunning: !req.stop,
      tcpEstablished: req.tcpEstablished,
      fileLocks: req.fileLocks,
      freezeCgroup: cg.freezerPath(),
      manageCgroups: 'soft',
      ...(state.network?.mode === 'bridge' && state.network.hostVeth ? { externals: [`veth[eth0]:${state.network.hostVeth}`] } : {}),
    });

    let frozenMs = 0;
    let dumpMs = 0;
    let snapshotMs = 0;
    try {
      // ---- frozen window: as short as we can make it ----
      const tf = performance.now();
      await cg.freeze();
      try {
        // the cgroup is frozen: the upper layer cannot change, so it is copied while CRIU dumps
        const td = performance.now();
        await Promise.all([
          runCriu(criu, argv, { imagesDir: images, logFile: 'dump.log' }).then(() => (dumpMs = performance.now() - td)),
          execa('cp', ['-a', '--reflink=auto', state.rootfs.upper, upperCopy]).then(() => (snapshotMs = performance.now() - td)),
        ]);
      } finally {
        // always: with --leave-running the tasks resume; with --stop CRIU killed them and they
        // must be thawed to die; after a failed dump the container keeps running
        await cg.thaw();
        frozenMs = performance.now() - tf;
      }
      // ---- the container runs again (or is gone, with stop) ----
    } catch (e) {
      await keepFailedLog(rt, req.name, images);
      await fs.rm(staging, { recursive: true, force: true });
      throw e;
    }

    try {
      const tp = performance.now();
      await criuCpuinfoDump(criu, images).catch(() => undefined);
      const out = path.join(store.dir, `.tmp-${id}`);
      await fs.mkdir(out, { recursive: true, mode: 0o700 });
      await fs.copyFile(path.join(images, 'dump.log'), path.join(out, 'dump.log'));
      const [criuBlob, upperBlob] = await Promise.all([
        packTreeToFile(images, path.join(out, 'criu.tar.zst'), { zstd: 1 }),
        packTreeToFile(upperCopy, path.join(out, 'upper.tar.zst'), { zstd: 3 }),
      ]);
      const packMs = performance.now() - tp;
      const manifest: CheckpointManifest = {
        format: CHECKPOINT_FORMAT,
        id,
        tag: req.tag ?? null,
        createdAt: new Date().toISOString(),
        container: config,
        image: config.image,
        network: state.network ?? null,
        stdio: state.stdio,
        criu: { version: criu.versionText, options: { tcpEstablished: req.tcpEstablished, fileLocks: req.fileLocks, leaveRunning: !req.stop } },
        host: { kernel: os.release(), arch: os.arch(), hostname: os.hostname() },
        timings: { frozenMs: round(frozenMs), dumpMs: round(dumpMs), snapshotMs: round(snapshotMs), packMs: round(packMs), totalMs: round(performance.now() - t0) },
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
      await fs.rm(staging, { recursive: true, force: true });
    }
  });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

async function keepFailedLog(rt: Runtime, name: string, images: string): Promise<void> {
  const dst = path.join(rt.paths.container(name), `dump-failed-${Date.now()}.log`);
  await fs.copyFile(path.join(images, 'dump.log'), dst).catch(() => undefined);
}
