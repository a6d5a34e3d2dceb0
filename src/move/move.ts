import { deviceDumpExternals } from '../security/criu-externals.js';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { AgentApi, Checksum, PutImagesResult } from '../agent/api.js';
import { PROTOCOL_VERSION } from '../agent/api.js';
import { filesystemOf, makeStagingDir, stagingBase } from '../checkpoint/staging.js';
import { logPolicyOf } from '../container/log-files.js';
import { isSameProcess, waitFor } from '../container/proc.js';
import { dumpExternals, stdioOf } from '../container/stdio.js';
import { releaseResources } from '../container/stop.js';
import { assertAllowed, loadView } from '../container/view.js';
import { dumpArgv } from '../criu/argv.js';
import { locateCriu, probeCapabilities } from '../criu/binary.js';
import { criuCpuinfoDump } from '../criu/cpuinfo.js';
import { formatCriuDeadline, planCriuDeadline } from '../criu/deadline.js';
import { runCriu } from '../criu/run.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { assertSameHash } from '../transfer/receive.js';
import { logsRequest, planLogsBase, planLogsTail, sendLogs, type LogPlan } from '../transfer/container-logs.js';
import { liveImageStream } from '../transfer/live-images.js';
import { listenForImages, type ImageCapture } from '../transfer/stream-capture.js';
import { measureZstd, probeLink, sendReadable, sendTree } from '../transfer/send.js';
import { deltaFilter, diffIndex, indexTree } from '../transfer/upper-index.js';
import { requireRoot } from '../util/root.js';
import { validateName } from '../util/name.js';
import { WarmMemory } from '../util/warm-memory.js';
import { appendHistory } from './history.js';
import { MoveJournal } from './journal.js';
import { chooseCompression, chooseImagePath, migrationId, type CompressChoice, type Downtime } from './plan.js';

export interface PeerConnection {
  agent: AgentApi;
  close(): Promise<void>;
}

export interface MoveRequest {
  name: string;
  host: string;
  compress: CompressChoice;
  signal?: AbortSignal;
  onEvent?: (e: MoveEvent) => void;
  /** fault in the memory the downtime will need before the freeze (default true; util/warm-memory.ts) */
  warmMemory?: boolean;
  /**
   * true: take the images from CRIU through its image-streamer socket (criu
   * dump --stream; transfer/stream-capture.ts); false: follow the files it
   * writes to tmpfs; undefined: files where tmpfs has room (plan.ts
   * chooseImagePath). Files are also the fallback where the streamer cannot run.
   */
  criuStream?: boolean;
  /**
   * Following files (not criuStream), the peer restores while the images
   * arrive: CRIU reads the pages as they come (transfer/stream-serve.ts).
   * Default true; false restores after the transfer, as with the streamer.
   */
  restoreWhileReceiving?: boolean;
  /** test hook: flip a byte in the memory images on the wire */
  faultCorruptImages?: boolean;
}

export interface MoveEvent {
  phase: string;
  bytes?: number;
  totalBytes?: number;
  message?: string;
}

export interface MoveReport {
  id: string;
  name: string;
  host: string;
  epoch: number;
  downtime: Downtime;
  /** the peer's restore (downtime.restoreMs) split: cgroups, rootfs and network set up, then criu restore */
  /** duringTransfer: CRIU restored while the images arrived; restore (above) is then only what was left after the last byte, */
  /** of which CRIU itself ran criuAfterLastByteMs (restoring what came last; the rest is round trips and bookkeeping) */
  restoreParts: { setupMs: number; criuMs: number; duringTransfer: boolean; criuAfterLastByteMs?: number };
  preCopy: string;
  /** memory faulted in before the freeze, handed back to the kernel as the downtime needed it, and how long that took */
  /** peerPoolBytes: of peerBytes, a tmpfs file preallocated for the largest pages image */
  warmMemory: { sourceBytes: number; peerBytes: number; peerPoolBytes: number; ms: number };
  /** how the images left CRIU: 'stream' (its image streamer, no tmpfs copy) or 'files' (tmpfs, followed as written), and why */
  images: { via: 'stream' | 'files'; note?: string };
  /** link: measured MB/s sent plain, and through zstd (bytes before compression); ratio: images on the wire / images */
  compression: { used: boolean; linkMBps: number; linkZstdMBps: number; zstdMBps: number; ratio: number };
  /** logs: the container's log files and OOM record, sent while it ran and in the downtime */
  bytes: { upperBase: number; upperDelta: number; images: number; imagesTar: number; image: number; logs: number };
  tcpEstablished: boolean;
  network: { ip: string | null; keptIp: boolean };
  totalMs: number;
  at: string;
}

const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;

/**
 * The end-to-end check of a move's streams. SSH's authenticated encryption
 * already guards the wire; this catches our own framing, pipes and files going
 * wrong, which CRC-32 does (as zfs send's fletcher4, btrfs send's crc32c) at a
 * third of sha256's CPU: 1.4 s less per GiB over both ends, all of it inside
 * the downtime on a host whose cores the transfer keeps busy.
 */
const CHECKSUM: Checksum = 'crc32';

/**
 * Move a running container to another host. One linear function with an
 * explicit point of no return (`decided` in the journal): before it any error
 * rolls back (the peer removes what it made, the source thaws and keeps
 * running); after it the move completes (the source copy is killed only once
 * the peer has resumed its copy). Never two running copies, never none.
 */
export async function moveContainer(
  rt: Runtime,
  req: MoveRequest,
  connect: () => Promise<PeerConnection>,
  /** for the rollback: a connection that does not obey req.signal (the interrupt that caused the rollback) */
  connectForCleanup: () => Promise<PeerConnection> = connect,
): Promise<MoveReport> {
  validateName('container', req.name);
  requireRoot('move a container');
  const emit = req.onEvent ?? (() => undefined);
  return withLock(rt.store.lockDir(req.name), `container ${req.name}`, async () => {
    const t0 = performance.now();
    const view = await loadView(rt, req.name);
    assertAllowed(view, 'move');
    const { config } = view;
    const stdio = await stdioOf(view.state, Boolean(view.config.tty));
    const state = { ...view.state, ...(stdio ? { stdio } : {}) };
    if (!state.initPid || !state.stdio) {
      throw new TsmError('EBAD_STATE', `container "${req.name}" has no recorded ${state.initPid ? 'stdout/stderr pipes (CRIU hands them over on restore)' : 'init'}`, { fix: 'restart it with tsmigrate run' });
    }
    const criu = await locateCriu();
    const caps = await probeCapabilities(criu);
    const cg = rt.cgroups(req.name);
    const epoch = (state.epoch ?? 0) + 1;
    const id = migrationId(randomBytes(4).toString('hex'), new Date());
    const journal = await MoveJournal.create(rt.paths, id, req.name, req.host, epoch);
    const image = await resolveImage(rt.paths, config.image.digest);
    let staging: string | undefined;
    let conn: PeerConnection | undefined;
    let frozen = false;
    let decided = false;
    let linkDown: string | undefined;
    let warmP: Promise<WarmMemory> | undefined;
    let capture: ImageCapture | undefined;
    try {
      // ---- before anything is frozen: connect, check, send what can go while it runs ----
      emit({ phase: 'connect' });
      conn = await connect();
      const peer = conn.agent;
      const hello = await peer.hello({ protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '1' });
      const sameMachine = hello.hostname === os.hostname() && hello.root !== rt.paths.root;
      const leaseOwner = sameMachine ? { root: rt.paths.root, container: req.name } : null;
      staging = await makeStagingDir(stagingBase(rt.paths.root, (await cg.stats()).memoryBytes ?? 0), `move-${id}`);
      await criuCpuinfoDump(criu, staging);
      const cpuinfo = (await fs.readFile(path.join(staging, 'cpuinfo.img'))).toString('base64');
      const stats = await cg.stats();
      const upperBytes = await duBytes(state.rootfs.upper);
      emit({ phase: 'preflight' });
      const pre = await peer.preflight({
        name: req.name, config, network: state.network ?? null, cpuinfo, memoryBytes: stats.memoryBytes ?? 0, upperBytes, leaseOwner, epoch,
      });
      if (!pre.ok) {
        const p = pre.problems;
        throw new TsmError('EPREFLIGHT', `${req.host} cannot take "${req.name}": ${p.map((x) => x.message).join('; ')}`, {
          fix: p.map((x) => x.fix).join('; '),
        });
      }
      req.signal?.throwIfAborted();
      await journal.append('preflight-ok');
      let imageBytes = 0;
      if (pre.needImage) {
        emit({ phase: 'image', message: `sending image ${image.name}` });
        const r = await sendTree(image.rootfs, (d) => peer.putImage({ name: image.name, digest: image.digest }, d), { zstd: true, ...sig(req) });
        imageBytes = r.bytes;
      }
      // compression: only where it pays on this link
      // measured through the connection, before the freeze (this also warms both ends up)
      emit({ phase: 'probe' });
      const z = measureZstd();
      // (forced on or off: the warm-up alone, which keeps cold-start costs out of the downtime)
      const auto = req.compress === 'auto';
      const measured = await probeLink((d, compression, bytes) => peer.probe({ bytes, compression, checksum: CHECKSUM }, d), { plain: auto, zstd: auto });
      const link = measured.plainBps;
      const linkZstd = measured.zstdBps;
      const useZstd = chooseCompression(req.compress, link, linkZstd);
      await peer.begin({
        migrationId: id, epoch, name: req.name, config, network: state.network ?? null, leaseOwner, stdio: state.stdio,
        criuOptions: { tcpEstablished: true, fileLocks: false }, criuDeadline: { ...rt.criuDeadline },
      });
      await journal.append('begun', { useZstd });
      emit({ phase: 'upper' });
      const index0 = await indexTree(state.rootfs.upper);
      const base = await sendTree(state.rootfs.upper, (d) => peer.putUpper({ migrationId: id, phase: 'base', deleted: [], compression: useZstd ? 'zstd' : 'none', checksum: CHECKSUM }, d), {
        // the container runs: files may change under the reader; every change after index0 is in the delta
        zstd: useZstd, checksum: CHECKSUM, ...sig(req), live: true, onBytes: (n) => emit({ phase: 'upper', bytes: n, totalBytes: Math.round(upperBytes * (useZstd ? z.ratio : 1)) }),
      });
      await journal.append('upper-sent', { bytes: base.bytes });
      // the container's log and OOM record; what the container writes until the freeze follows in the downtime
      const logPolicy = logPolicyOf(config);
      const putLogs = (p: LogPlan, d: Readable) => peer.putLogs(logsRequest(id, p, useZstd ? 'zstd' : 'none', CHECKSUM), d);
      const logsOpts = { zstd: useZstd, checksum: CHECKSUM, ...sig(req) };
      const logs0 = await sendLogs(rt.paths.container(req.name), (files) => planLogsBase(files, logPolicy), putLogs, logsOpts);
      const preCopy = caps.memDirtyTrack
        ? 'not used: memory pre-copy is not implemented yet (all memory is dumped while frozen)'
        : 'not available: this kernel has no soft-dirty page tracking (criu check --feature mem_dirty_track), so all memory is dumped while frozen';
      emit({ phase: 'pre-copy', message: preCopy });
      req.signal?.throwIfAborted();
      // the memory the downtime needs, faulted in now: the peer's for the images and the restore, ours for the dump
      const tWarm = performance.now();
      const memBytes = req.warmMemory === false ? 0 : (stats.memoryBytes ?? 0);
      if (memBytes) emit({ phase: 'warm', totalBytes: memBytes * 3 });
      warmP = WarmMemory.reserve(memBytes, sig(req));
      const peerWarm = memBytes ? await peer.warm({ migrationId: id, bytes: 2 * memBytes }) : { bytes: 0, poolBytes: 0 };
      const ownWarm = await warmP;
      const warmed = { sourceBytes: ownWarm.bytes, peerBytes: peerWarm.bytes, peerPoolBytes: peerWarm.poolBytes, ms: ms(tWarm, performance.now()) };
      req.signal?.throwIfAborted();
      const images = path.join(staging, 'images');
      await fs.mkdir(images, { mode: 0o700 });
      await fs.rename(path.join(staging, 'cpuinfo.img'), path.join(images, 'cpuinfo.img'));
      // CRIU's image streamer listening before the freeze; files in tmpfs where it cannot run
      const path0 = chooseImagePath(req.criuStream, stats.memoryBytes ?? 0, filesystemOf(staging));
      let imagesVia: MoveReport['images'] = { via: 'files', note: path0.why };
      if (path0.stream) {
        try {
          capture = await listenForImages(images);
          imagesVia = { via: 'stream', note: path0.why };
        } catch (e) {
          imagesVia = { via: 'files', note: (e as Error).message };
        }
      }
      // handed back a moment before the dump writes its images (still backed, see WarmMemory)
      ownWarm.releaseAll();

      // ---- the downtime: frozen from here until the peer has resumed ----
      const tFreeze = performance.now();
      await journal.append('frozen');
      frozen = true;
      emit({ phase: 'freeze' });
      await cg.freeze();
      const tFrozen = performance.now();
      // for the progress line: the images are about the container's memory, less with zstd
      const imagesEstimate = Math.round((stats.memoryBytes ?? 0) * (useZstd ? z.ratio : 1));
      emit({ phase: 'dump' });
      // the images go to the peer while CRIU writes them (transfer/stream-capture.ts, or transfer/live-images.ts)
      const hostVeth = state.network?.mode === 'bridge' ? state.network.hostVeth : undefined;
      // streamed, CRIU writes only as fast as the link takes the images: its deadline allows for that
      const streamBps = useZstd ? linkZstd : link;
      const dumped = runCriu(criu, dumpArgv({
        pid: state.initPid, imagesDir: images, logFile: 'dump.log', leaveRunning: true, tcpEstablished: true, stream: Boolean(capture),
        freezeCgroup: cg.freezerPath(), manageCgroups: 'soft',
        externals: [...dumpExternals(state.network, state.stdio), ...deviceDumpExternals(config)],
      }), {
        imagesDir: images,
        logFile: 'dump.log',
        // never cancelled half-way (a killed CRIU can leave its parasite in the tasks), unless it stops making progress
        deadline: planCriuDeadline(rt.criuDeadline, { memoryBytes: stats.memoryBytes ?? 0, ...(capture && streamBps > 0 ? { linkBps: streamBps } : {}) }),
        progress: { cgroupCpuNs: async () => (await cg.stats()).cpuUsageNs },
        stalledFix: `the move was rolled back and the container runs on here; if CRIU is only slow, allow it more with --criu-deadline (now ${formatCriuDeadline(rt.criuDeadline)})`,
        keepLog: path.join(rt.paths.container(req.name), `dump-failed-${id}.log`),
      });
      let tDumped = 0;
      const afterDump = dumped.then(async () => {
        tDumped = performance.now();
        await journal.append('dumped');
        // CRIU unlocks the network when a --leave-running dump ends; the frozen source must not
        // answer for the address the peer is about to take over: take its side of the link down
        if (hostVeth) {
          await execa('ip', ['link', 'set', hostVeth, 'down']);
          linkDown = hostVeth;
        }
      });
      afterDump.catch(() => undefined);
      // frozen: the upper layer cannot change any more. What changed goes first, while CRIU
      // works: the peer's rootfs is then complete before it restores (during the images' transfer)
      const records = capture ? capture.records(dumped) : liveImageStream(images, dumped, sig(req));
      let img: Awaited<ReturnType<typeof sendReadable<PutImagesResult>>>;
      let upd: Awaited<ReturnType<typeof sendTree>>;
      let logs1: Awaited<ReturnType<typeof sendLogs>>;
      try {
        const delta = diffIndex(index0, await indexTree(state.rootfs.upper));
        upd = await sendTree(state.rootfs.upper, (d) => peer.putUpper({ migrationId: id, phase: 'delta', deleted: delta.deleted, compression: useZstd ? 'zstd' : 'none', checksum: CHECKSUM }, d), {
          zstd: useZstd, checksum: CHECKSUM, include: deltaFilter(delta), ...sig(req),
        });
        logs1 = await sendLogs(rt.paths.container(req.name), (files) => planLogsTail(logs0.sent, files, logPolicy), putLogs, logsOpts);
        // following files, the peer restores as the images arrive (CRIU's streamer has no manifest to start from)
        const restore = !capture && req.restoreWhileReceiving !== false ? { upper: [base.digest, upd.digest] } : undefined;
        img = await sendReadable(records, (d) => peer.putImages({ migrationId: id, compression: useZstd ? 'zstd' : 'none', format: 'records', checksum: CHECKSUM, ...(restore ? { restore } : {}) }, d), {
          zstd: useZstd, checksum: CHECKSUM, ...sig(req), corrupt: Boolean(req.faultCorruptImages), onBytes: (n) => emit({ phase: 'transfer', bytes: n, totalBytes: imagesEstimate }),
        });
      } catch (e) {
        // CRIU always runs to its end. Following files, its own failure is the one to report;
        // streaming, a failed send stops the streamer (CRIU then fails on a broken pipe), and
        // a failure of CRIU's own already is the stream's error
        records.destroy();
        const criuFailed = await afterDump.then(() => undefined, (x: unknown) => x);
        throw capture ? e : (criuFailed ?? e);
      }
      await afterDump;
      req.signal?.throwIfAborted();
      emit({ phase: 'transfer' });
      // a restore during the transfer went on for tailMs after the last byte: that is the restore's part
      const early = img.peer.restore;
      const tSent = performance.now() - (early?.tailMs ?? 0);
      rt.logger.debug(`move ${id}: upper delta ${Math.round(upd.ms)} ms, then images ${Math.round(img.ms)} ms (dump ${ms(tFrozen, tDumped)} ms inside)${early ? `, restored during the transfer (${early.tailMs} ms after it)` : ''}`);
      await journal.append('sent', { images: img.bytes, delta: upd.bytes });
      assertSameHash('memory images', img.digest, img.peer.digest);
      req.signal?.throwIfAborted();
      emit({ phase: 'restore' });
      const prep = await peer.prepare({ migrationId: id, expect: { images: img.digest, upper: [base.digest, upd.digest] } });
      const tRestored = performance.now();
      await journal.append('prepared', { restoreMs: prep.restoreMs });
      req.signal?.throwIfAborted();

      // ---- the point of no return ----
      await journal.append('decided');
      decided = true;
      emit({ phase: 'resume' });
      await commitWithRetry(peer, id, connect);
      const tResumed = performance.now();
      await journal.append('committed');

      // ---- the source copy goes: it was frozen all along ----
      emit({ phase: 'cleanup' });
      await cg.killAll('SIGKILL').catch(() => undefined);
      await cg.thaw().catch(() => undefined);
      await waitFor(async () => !(await isSameProcess(state.initPid, state.initStartTime)), 10000);
      await releaseResources(rt, req.name, await loadView(rt, req.name));
      await rt.store.remove(req.name);
      await journal.append('done');
      const report: MoveReport = {
        id, name: req.name, host: req.host, epoch,
        downtime: {
          freezeMs: ms(tFreeze, tFrozen), dumpMs: ms(tFrozen, tDumped), transferMs: ms(tDumped, tSent),
          restoreMs: ms(tSent, tRestored), resumeMs: ms(tRestored, tResumed), totalMs: ms(tFreeze, tResumed),
        },
        restoreParts: {
          setupMs: prep.setupMs, criuMs: prep.criuMs, duringTransfer: Boolean(early),
          ...(early?.criuTailMs !== undefined ? { criuAfterLastByteMs: early.criuTailMs } : {}),
        },
        preCopy,
        warmMemory: warmed,
        images: imagesVia,
        compression: { used: useZstd, linkMBps: Math.round(link / 1e6), linkZstdMBps: Math.round(linkZstd / 1e6), zstdMBps: Math.round(z.bps / 1e6), ratio: img.tarBytes ? Math.round((img.bytes / img.tarBytes) * 100) / 100 : 1 },
        bytes: { upperBase: base.bytes, upperDelta: upd.bytes, images: img.bytes, imagesTar: img.tarBytes, image: imageBytes, logs: logs0.bytes + logs1.bytes },
        tcpEstablished: true,
        network: { ip: state.network?.ip ?? null, keptIp: Boolean(state.network?.ip) },
        totalMs: ms(t0, performance.now()),
        at: new Date().toISOString(),
      };
      await appendHistory(rt.paths, report);
      return report;
    } catch (caught) {
      // an interrupt shows as what it is, not as the error of the step it cut short
      const e = req.signal?.aborted && !decided ? (req.signal.reason as Error) : (caught as Error);
      if (decided) {
        throw new TsmError('EMOVE_UNFINISHED', `move ${id} of "${req.name}" was decided but not finished: ${(e as Error).message}`, {
          fix: 'run tsmigrate recover (the source copy stays frozen until the peer confirms)',
          cause: e,
        });
      }
      emit({ phase: 'rollback', message: (e as Error).message });
      // the source first: it must run again whatever the peer does
      if (linkDown) await execa('ip', ['link', 'set', linkDown, 'up']).catch(() => undefined);
      if (frozen) await cg.thaw();
      await abortPeer(req.signal?.aborted ? undefined : conn, connectForCleanup, id);
      await journal.append('aborted', { error: (e as Error).message });
      throw e;
    } finally {
      if (warmP) (await warmP.catch(() => undefined))?.releaseAll();
      capture?.kill();
      if (staging) await fs.rm(staging, { recursive: true, force: true });
      if (conn) await conn.close().catch(() => undefined);
    }
  });
}

function sig(req: MoveRequest): { signal?: AbortSignal } {
  return req.signal ? { signal: req.signal } : {};
}

async function commitWithRetry(peer: AgentApi, id: string, connect: () => Promise<PeerConnection>): Promise<void> {
  try {
    await peer.commit({ migrationId: id });
    return;
  } catch (first) {
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 500 * (i + 1)));
      const c = await connect().catch(() => undefined);
      if (!c) continue;
      try {
        await c.agent.hello({ protocol: PROTOCOL_VERSION, tool: 'tsmigrate', version: '1' });
        await c.agent.commit({ migrationId: id });
        return;
      } catch {
        /* try again */
      } finally {
        await c.close().catch(() => undefined);
      }
    }
    throw first;
  }
}

/** Tell the peer to remove what it made; over a new connection if the old one is gone. */
async function abortPeer(conn: PeerConnection | undefined, connect: () => Promise<PeerConnection>, id: string): Promise<boolean> {
  if (conn) {
    const ok = await withTimeout(conn.agent.abort({ migrationId: id }), 30000).then(() => true, () => false);
    if (ok) return true;
  }
  for (let i = 0; i < 2; i++) {
    const c = await withTimeout(connect(), 30000).catch(() => undefined);
    if (!c) continue;
    try {
      await withTimeout(c.agent.abort({ migrationId: id }), 30000);
      return true;
    } catch {
      /* try again */
    } finally {
      await c.close().catch(() => undefined);
    }
  }
  return false;
}

async function withTimeout<T>(p: Promise<T>, msT: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_r, rej) => (t = setTimeout(() => rej(new Error('timeout')), msT)))]);
  } finally {
    if (t) clearTimeout(t);
  }
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else total += (await fs.lstat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(dir);
  return total;
}
