import { deviceDumpExternals } from '../security/criu-externals.js';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { dumpArgv } from '../criu/argv.js';
import { locateCriu, type CriuBinary } from '../criu/binary.js';
import { criuCpuinfoDump } from '../criu/cpuinfo.js';
import { formatCriuDeadline, planCriuDeadline } from '../criu/deadline.js';
import { runCriu } from '../criu/run.js';
import type { ContainerConfig, ContainerRuntimeState } from '../container/types.js';
import { dumpExternals, stdioOf } from '../container/stdio.js';
import { stopLocked } from '../container/stop.js';
import { assertAllowed, loadView } from '../container/view.js';
import { TsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { validateName } from '../util/name.js';
import { requireRoot } from '../util/root.js';
import { checkpointId, validateTag, type CheckpointManifest } from './manifest.js';
import { makeStagingDir, stagingBase } from './staging.js';

export interface CaptureRequest {
  name: string;
  stop: boolean;
  tcpEstablished: boolean;
  fileLocks: boolean;
}

/** A checkpoint's raw parts in a private staging directory (the caller stores them, then calls cleanup). */
export interface Captured {
  id: string;
  config: ContainerConfig;
  state: ContainerRuntimeState;
  staging: string;
  /** CRIU's images (dump.log and cpuinfo.img included) */
  images: string;
  /** a copy of the upper layer taken while frozen */
  upper: string;
  timings: { frozenMs: number; dumpMs: number; snapshotMs: number };
  t0: number;
  cleanup(): Promise<void>;
}

/**
 * The prologue and epilogue every checkpoint verb shares: validate, take the
 * container's lock, capture (frozen only for the dump), hand the parts to
 * `store`, stop the container if asked, and always remove the staging.
 */
export async function withCapture<T>(rt: Runtime, req: CaptureRequest & { tag?: string | undefined }, store: (cap: Captured, criu: CriuBinary) => Promise<T>): Promise<T> {
  validateName('container', req.name);
  validateTag(req.tag);
  requireRoot('checkpoint a container');
  const criu = await locateCriu(rt.tools.criu);
  return withLock(rt.store.lockDir(req.name), `container ${req.name}`, async () => {
    const cap = await captureLocked(rt, req, criu);
    try {
      const r = await store(cap, criu);
      if (req.stop) await stopLocked(rt, req.name, 0);
      return r;
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

/**
 * Freeze the container through its freezer cgroup, dump it with CRIU (handed
 * the frozen cgroup), copy the upper layer while still frozen, then thaw (or,
 * with stop, let CRIU kill it). Call with the container's lock held. A dump
 * CRIU refuses leaves the container running and thawed, and nothing behind.
 */
export async function captureLocked(rt: Runtime, req: CaptureRequest, criu: CriuBinary): Promise<Captured> {
  await thawIfCheckpointerDied(rt, req.name);
  const view = await loadView(rt, req.name);
  assertAllowed(view, 'checkpoint');
  if (view.status === 'frozen') {
    throw new TsmError('EBAD_STATE', `container "${req.name}" is frozen by the user`, { fix: `thaw it first: tsmigrate thaw ${req.name}` });
  }
  const { config } = view;
  const stdio = await stdioOf(view.state, Boolean(view.config.tty));
  const state = { ...view.state, ...(stdio ? { stdio } : {}) };
  if (!state.initPid || !state.stdio) {
    throw new TsmError('EBAD_STATE', `container "${req.name}" has no recorded init or stdio`, { fix: 'restart it with tsmigrate run' });
  }
  const cg = rt.cgroups(req.name);
  const stats = await cg.stats().catch(() => ({ memoryBytes: 0 }));
  const t0 = performance.now();
  const id = checkpointId(req.name, new Date(), randomBytes(3).toString('hex'));
  const staging = await makeStagingDir(stagingBase(rt.paths.root, stats.memoryBytes ?? 0, rt.tools.staging), id);
  const cleanup = () => fs.rm(staging, { recursive: true, force: true });
  const images = path.join(staging, 'images');
  const upper = path.join(staging, 'upper');
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
    externals: [...dumpExternals(state.network, state.stdio), ...deviceDumpExternals(config)],
  });
  const timings = { frozenMs: 0, dumpMs: 0, snapshotMs: 0 };
  const criuRun = {
    imagesDir: images,
    logFile: 'dump.log',
    deadline: planCriuDeadline(rt.criuDeadline, { memoryBytes: stats.memoryBytes ?? 0 }),
    progress: { cgroupCpuNs: async () => (await cg.stats()).cpuUsageNs },
    stalledFix: `the container was thawed and runs on; if CRIU is only slow here, allow it more with --criu-deadline (now ${formatCriuDeadline(rt.criuDeadline)})`,
    // the staging goes; the log is kept under <root>/logs/criu, where the error says
    keepLog: { root: rt.paths.root, container: req.name },
  };
  try {
    // ---- frozen window: as short as we can make it ----
    const tf = performance.now();
    // a marker, so that if this process dies while the container is frozen the next one thaws it
    await fs.writeFile(freezeMarker(rt, req.name), `${process.pid}\n`, { mode: 0o600 });
    await cg.freeze();
    try {
      // the cgroup is frozen: the upper layer cannot change, so it is copied while CRIU dumps
      const td = performance.now();
      await Promise.all([
        runCriu(criu, argv, criuRun).then(() => (timings.dumpMs = round(performance.now() - td))),
        execa('cp', ['-a', '--reflink=auto', state.rootfs.upper, upper]).then(() => (timings.snapshotMs = round(performance.now() - td))),
      ]);
    } finally {
      // always: with --leave-running the tasks resume; with --stop CRIU killed them and they
      // must be thawed to die; after a failed dump the container keeps running
      await cg.thaw();
      await fs.rm(freezeMarker(rt, req.name), { force: true });
      timings.frozenMs = round(performance.now() - tf);
    }
  } catch (e) {
    await cleanup();
    throw e;
  }
  await criuCpuinfoDump(criu, images).catch(() => undefined);
  return { id, config, state, staging, images, upper, timings, t0, cleanup };
}

function freezeMarker(rt: Runtime, name: string): string {
  return path.join(rt.paths.container(name), 'checkpoint-freeze.pid');
}

/**
 * A checkpoint killed while its container was frozen (SIGKILL, a crash, a power cut of
 * the daemon only) left the marker: thaw the container. Call with the container's lock
 * held, which proves that the process that wrote the marker is gone. Returns whether it thawed.
 */
export async function thawIfCheckpointerDied(rt: Runtime, name: string): Promise<boolean> {
  const marker = freezeMarker(rt, name);
  const owner = await fs.readFile(marker, 'utf8').catch(() => undefined);
  if (owner === undefined) return false;
  rt.logger.warn(`container ${name} was left frozen by an interrupted checkpoint (pid ${owner.trim()}): thawing it`);
  await rt.cgroups(name).thaw();
  await fs.rm(marker, { force: true });
  return true;
}

export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
