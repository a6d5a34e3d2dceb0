import { execa } from 'execa';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { AgentApi, Checksum, PutImagesResult } from '../agent/api.js';
import { filesystemOf, makeStagingDir, stagingBase } from '../checkpoint/staging.js';
import { logPolicyOf } from '../container/log-files.js';
import { dumpExternals } from '../container/stdio.js';
import type { ContainerView } from '../container/types.js';
import { dumpArgv } from '../criu/argv.js';
import type { CriuBinary } from '../criu/binary.js';
import { criuCpuinfoDump } from '../criu/cpuinfo.js';
import { formatCriuDeadline, planCriuDeadline } from '../criu/deadline.js';
import { runCriu } from '../criu/run.js';
import type { ImageInfo } from '../image/store.js';
import type { Runtime } from '../runtime/context.js';
import { deviceDumpExternals } from '../security/criu-externals.js';
import { logsRequest, planLogsBase, planLogsTail, sendLogs, type LogPlan, type LogsSent } from '../transfer/container-logs.js';
import { liveImageStream } from '../transfer/live-images.js';
import { listenForImages, type ImageCapture } from '../transfer/stream-capture.js';
import { measureZstd, probeLink, sendReadable, sendTree } from '../transfer/send.js';
import { deltaFilter, diffIndex, indexTree, type TreeIndex } from '../transfer/upper-index.js';
import { WarmMemory } from '../util/warm-memory.js';
import type { MigrationPlan } from './plan.js';
import { checkFileLocks } from './file-locks-read.js';
import { diskBytes, spaceFacts } from './peer-check.js';
import { removeSourceCopy } from './source-copy.js';
import type { FrozenCopy, LinkMeasure, MoveSource, Progress, RunningCopy, SourceFacts, Warmed } from './source.js';

/**
 * The end-to-end check of a move's streams. SSH's authenticated encryption
 * already guards the wire; this catches our own framing, pipes and files going
 * wrong, which CRC-32 does (as zfs send's fletcher4, btrfs send's crc32c) at a
 * third of sha256's CPU: 1.4 s less per GiB over both ends, all of it inside
 * the downtime on a host whose cores the transfer keeps busy.
 */
const CHECKSUM: Checksum = 'crc32';

/** Test seams of the real source (set only by tests' own composition). */
export interface SourceFaults {
  /** flip a byte in the memory images on the wire */
  corruptImages?: boolean;
}

/** The real source: the container's cgroups, CRIU, the upper layer and the log, on this host. */
export class LocalSource implements MoveSource {
  private staging: string | undefined;
  private images: string | undefined;
  private capture: ImageCapture | undefined;
  private imagesVia: FrozenCopy['imagesVia'] = { via: 'files' };
  private warmth: Promise<WarmMemory> | undefined;
  private index0: TreeIndex | undefined;
  private logs0: { sent: LogsSent; bytes: number } | undefined;
  private zstd = { ratio: 1, bps: 0 };
  private link = { plainBps: 0, zstdBps: 0 };
  private downVeth: string | undefined;

  constructor(
    private readonly rt: Runtime,
    private readonly id: string,
    private readonly view: ContainerView & { state: { initPid: number } },
    private readonly stdio: SourceFacts['stdio'],
    private readonly image: ImageInfo & { rootfs: string },
    private readonly criu: CriuBinary,
    private readonly faults: SourceFaults = {},
  ) {}

  private get name(): string {
    return this.view.config.name;
  }
  private cg() {
    return this.rt.cgroups(this.name);
  }

  async inspect(): Promise<SourceFacts> {
    // what CRIU cannot carry is refused before anything is sent or frozen
    const locks = await checkFileLocks(this.name, await this.cg().pids());
    const stats = await this.cg().stats();
    const memoryBytes = stats.memoryBytes ?? 0;
    this.staging = await makeStagingDir(stagingBase(this.rt.paths.root, memoryBytes, this.rt.tools.staging), `move-${this.id}`);
    await criuCpuinfoDump(this.criu, this.staging);
    const cpuinfo = (await fs.readFile(path.join(this.staging, 'cpuinfo.img'))).toString('base64');
    const { config, state } = this.view;
    return {
      config,
      network: state.network ?? null,
      stdio: this.stdio,
      epoch: (state.epoch ?? 0) + 1,
      memoryBytes,
      ...(await spaceFacts(this.rt, this.view, this.image.rootfs)),
      cpuinfo,
      image: { name: this.image.name, digest: this.image.digest },
      staging: filesystemOf(this.staging),
      fileLocks: locks.fileLocks,
      locks: locks.held,
    };
  }

  async sendImage(peer: AgentApi, signal: AbortSignal | undefined): Promise<number> {
    const r = await sendTree(this.image.rootfs, (d) => peer.putImage({ name: this.image.name, digest: this.image.digest }, d), { zstd: true, ...sig(signal) });
    return r.bytes;
  }

  async measureLink(peer: AgentApi, modes: { plain: boolean; zstd: boolean }): Promise<LinkMeasure> {
    this.zstd = measureZstd();
    const m = await probeLink((d, compression, bytes) => peer.probe({ bytes, compression, checksum: CHECKSUM }, d), modes);
    this.link = m;
    return { plainBps: m.plainBps, zstdBps: m.zstdBps, zstd: this.zstd };
  }

  async sendRunning(peer: AgentApi, id: string, plan: MigrationPlan, signal: AbortSignal | undefined, emit: Progress): Promise<RunningCopy> {
    const upper = this.view.state.rootfs.upper;
    const upperBytes = await diskBytes(upper);
    this.index0 = await indexTree(upper);
    const compression = plan.useZstd ? 'zstd' : 'none';
    const upperBase = await sendTree(upper, (d) => peer.putUpper({ migrationId: id, phase: 'base', deleted: [], compression, checksum: CHECKSUM }, d), {
      // the container runs: files may change under the reader; every change after index0 is in the delta
      zstd: plan.useZstd, checksum: CHECKSUM, ...sig(signal), live: true,
      onBytes: (n) => emit({ phase: 'upper', bytes: n, totalBytes: Math.round(upperBytes * (plan.useZstd ? this.zstd.ratio : 1)) }),
    });
    // the container's log and OOM record; what the container writes until the freeze follows in the downtime
    this.logs0 = await sendLogs(this.rt.paths.container(this.name), (files) => planLogsBase(files, logPolicyOf(this.view.config)), this.putLogs(peer, id, plan), this.logsOpts(plan, signal));
    return { upperBase, logsBytes: this.logs0.bytes };
  }

  private putLogs(peer: AgentApi, id: string, plan: MigrationPlan) {
    return (p: LogPlan, d: Readable) => peer.putLogs(logsRequest(id, p, plan.useZstd ? 'zstd' : 'none', CHECKSUM), d);
  }
  private logsOpts(plan: MigrationPlan, signal: AbortSignal | undefined) {
    return { zstd: plan.useZstd, checksum: CHECKSUM, ...sig(signal) };
  }

  async warm(peer: AgentApi, id: string, plan: MigrationPlan, signal: AbortSignal | undefined): Promise<Warmed> {
    // the memory the downtime needs, faulted in now: the peer's for the images and the restore, ours for the dump
    const t0 = performance.now();
    this.warmth = WarmMemory.reserve(plan.warm.sourceBytes, sig(signal));
    const peerWarm = plan.warm.peerBytes ? await peer.warm({ migrationId: id, bytes: plan.warm.peerBytes }) : { bytes: 0, poolBytes: 0 };
    const own = await this.warmth;
    return { sourceBytes: own.bytes, peerBytes: peerWarm.bytes, peerPoolBytes: peerWarm.poolBytes, ms: Math.round((performance.now() - t0) * 10) / 10 };
  }

  releaseWarm(): void {
    // handed back a moment before the dump writes its images (still backed, see WarmMemory)
    void this.warmth?.then((w) => w.releaseAll(), () => undefined);
  }

  async prepareImages(plan: MigrationPlan): Promise<void> {
    this.images = path.join(this.staging!, 'images');
    await fs.mkdir(this.images, { mode: 0o700 });
    await fs.rename(path.join(this.staging!, 'cpuinfo.img'), path.join(this.images, 'cpuinfo.img'));
    // CRIU's image streamer listening before the freeze; files in tmpfs where it cannot run
    this.imagesVia = { via: 'files', note: plan.imagePath.why };
    if (plan.imagePath.stream) {
      try {
        this.capture = await listenForImages(this.images, this.rt.tools.streamer);
        this.imagesVia = { via: 'stream', note: plan.imagePath.why };
      } catch (e) {
        this.imagesVia = { via: 'files', note: (e as Error).message };
      }
    }
  }

  freeze(): Promise<void> {
    return this.cg().freeze();
  }
  thaw(): Promise<void> {
    return this.cg().thaw();
  }

  async dumpAndSend(peer: AgentApi, id: string, plan: MigrationPlan, running: RunningCopy, signal: AbortSignal | undefined, emit: Progress, onLinkDown: () => void): Promise<FrozenCopy> {
    const { state, config } = this.view;
    const images = this.images!;
    const cg = this.cg();
    const stats = await cg.stats();
    const memoryBytes = stats.memoryBytes ?? 0;
    const hostVeth = state.network?.mode === 'bridge' ? state.network.hostVeth : undefined;
    // for the progress line: the images are about the container's memory, less with zstd
    const imagesEstimate = Math.round(memoryBytes * (plan.useZstd ? this.zstd.ratio : 1));
    const compression = plan.useZstd ? 'zstd' : 'none';
    const linkBps = plan.useZstd ? this.link.zstdBps : this.link.plainBps;
    const dumped = runCriu(this.criu, dumpArgv({
      pid: state.initPid, imagesDir: images, logFile: 'dump.log', leaveRunning: true, tcpEstablished: plan.criu.tcpEstablished, fileLocks: plan.criu.fileLocks, stream: Boolean(this.capture),
      freezeCgroup: cg.freezerPath(), manageCgroups: 'soft',
      externals: [...dumpExternals(state.network, this.stdio), ...deviceDumpExternals(config)],
    }), {
      imagesDir: images,
      logFile: 'dump.log',
      // never cancelled half-way (a killed CRIU can leave its parasite in the tasks), unless it stops making progress;
      // streamed, CRIU writes only as fast as the link takes the images: its deadline allows for that
      deadline: planCriuDeadline(this.rt.criuDeadline, { memoryBytes, ...(this.capture && linkBps > 0 ? { linkBps } : {}) }),
      progress: { cgroupCpuNs: async () => (await cg.stats()).cpuUsageNs },
      stalledFix: `the move was rolled back and the container runs on here; if CRIU is only slow, allow it more with --criu-deadline (now ${formatCriuDeadline(this.rt.criuDeadline)})`,
      keepLog: { root: this.rt.paths.root, container: this.name },
    });
    let dumpedAt = 0;
    const afterDump = dumped.then(async () => {
      dumpedAt = performance.now();
      // CRIU unlocks the network when a --leave-running dump ends; the frozen source must not
      // answer for the address the peer is about to take over: take its side of the link down
      if (hostVeth) {
        await execa('ip', ['link', 'set', hostVeth, 'down']);
        this.downVeth = hostVeth;
        onLinkDown();
      }
    });
    afterDump.catch(() => undefined);
    // frozen: the upper layer cannot change any more. What changed goes first, while CRIU
    // works: the peer's rootfs is then complete before it restores (during the images' transfer)
    const records = this.capture ? this.capture.records(dumped) : liveImageStream(images, dumped, sig(signal));
    try {
      const delta = diffIndex(this.index0!, await indexTree(state.rootfs.upper));
      const upperDelta = await sendTree(state.rootfs.upper, (d) => peer.putUpper({ migrationId: id, phase: 'delta', deleted: delta.deleted, compression, checksum: CHECKSUM }, d), {
        zstd: plan.useZstd, checksum: CHECKSUM, include: deltaFilter(delta), ...sig(signal),
      });
      const logs1 = await sendLogs(this.rt.paths.container(this.name), (files) => planLogsTail(this.logs0!.sent, files, logPolicyOf(config)), this.putLogs(peer, id, plan), this.logsOpts(plan, signal));
      // following files, the peer restores as the images arrive (CRIU's streamer has no manifest to start from)
      const restore = plan.restoreWhileReceiving ? { upper: [running.upperBase.digest, upperDelta.digest] } : undefined;
      const img: Awaited<ReturnType<typeof sendReadable<PutImagesResult>>> = await sendReadable(records, (d) => peer.putImages({ migrationId: id, compression, format: 'records', checksum: CHECKSUM, ...(restore ? { restore } : {}) }, d), {
        zstd: plan.useZstd, checksum: CHECKSUM, ...sig(signal), corrupt: Boolean(this.faults.corruptImages), onBytes: (n) => emit({ phase: 'transfer', bytes: n, totalBytes: imagesEstimate }),
      });
      await afterDump;
      return { images: img, upperDelta, logsBytes: logs1.bytes, imagesVia: this.imagesVia, dumpedAt };
    } catch (e) {
      // CRIU always runs to its end. Following files, its own failure is the one to report;
      // streaming, a failed send stops the streamer (CRIU then fails on a broken pipe), and
      // a failure of CRIU's own already is the stream's error
      records.destroy();
      const criuFailed = await afterDump.then(() => undefined, (x: unknown) => x);
      throw this.capture ? e : (criuFailed ?? e);
    }
  }

  async linkUp(): Promise<void> {
    if (this.downVeth) await execa('ip', ['link', 'set', this.downVeth, 'up']);
    this.downVeth = undefined;
  }

  removeCopy(): Promise<void> {
    return removeSourceCopy(this.rt, this.name);
  }

  async cleanup(): Promise<void> {
    this.capture?.kill();
    if (this.staging) await fs.rm(this.staging, { recursive: true, force: true });
  }
}

function sig(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}
