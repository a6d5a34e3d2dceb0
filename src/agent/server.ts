import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { inflateZstd } from '../archive/inflate.js';
import { limitsFor, PRESETS, streamBound } from '../archive/limits.js';
import { detectLayout } from '../cgroup/detect.js';
import { filesystemOf, makeStagingDir, stagingBase } from '../checkpoint/staging.js';
import { logPolicyOf } from '../container/log-files.js';
import { stdioOf } from '../container/stdio.js';
import { releaseResources } from '../container/stop.js';
import { loadView } from '../container/view.js';
import { criuCheck, locateCriu, probeCapabilities } from '../criu/binary.js';
import { TsmError } from '../errors/errors.js';
import { importImage, resolveImage } from '../image/store.js';
import { settleMigration, undoMigration } from '../network/lease-handover.js';
import { rootfsLayout } from '../rootfs/overlay.js';
import { restoreTree, type HeldContainer } from '../restore/tree.js';
import type { Runtime } from '../runtime/context.js';
import { receiveLogs } from '../transfer/container-logs.js';
import { Meter, receiveRecords, receiveTar } from '../transfer/receive.js';
import { safeRemove } from '../transfer/upper-index.js';
import { checkAtRest, type ImageSum } from '../transfer/image-sums.js';
import { StoreService } from '../store/service.js';
import type { StoreRoots } from '../store/store-dirs.js';
import { WarmMemory, poolSize, preallocateFile } from '../util/warm-memory.js';
import { warmRefusal } from './warm-bound.js';
import type { AgentApi, Checksum, BeginRequest, SignedStatement, ContainerStatusResult, HelloResult, PreflightRequest, PutImagesRequest, PutImagesResult, PutLogsRequest, PutUpperRequest, StreamResult } from './api.js';
import { PROTOCOL_VERSION } from './api.js';
import { checkBegin, checkSums } from '../move/statement.js';
import { repairLeasesHere } from './lease-facts.js';
import { MigrationRecords, type IncomingMigration } from './migrations.js';
import { abortedError, holdUntil, withMigrationLock } from './hold.js';
import { peerPreflight } from './preflight.js';
import { guardSpace, isNoSpace } from './space-errors.js';
import { RestoreWhileReceiving, type ArrivingImages } from './restore-while-receiving.js';

/**
 * The destination side of a move: what `tsmigrate agent --stdio` serves over
 * SSH, and what tests call in-process. Until `prepare` succeeds, losing the
 * source (onDisconnect) aborts everything; after it, the held tree waits for
 * the source's decision (commit or abort, possibly from `tsmigrate recover`).
 */
export class LocalAgent implements AgentApi {
  private readonly records: MigrationRecords;
  private readonly held = new Map<string, HeldContainer>();
  /** migrations this connection began: the only ones its loss may abort */
  private readonly begunHere = new Set<string>();
  /** memory faulted in before the freeze, per migration (util/warm-memory.ts) */
  private readonly warmth = new Map<string, { memory: WarmMemory; pool: string | undefined; bytes: number }>();
  /** bound into what the source signs for this connection (move/statement.ts) */
  private readonly challenge = randomBytes(32).toString('hex');
  /** test hook (set by test/helpers/fault-agent.ts): runs as a restore begins, during the transfer or in prepare */
  faultBeforeRestore: (() => void | Promise<void>) | undefined;
  /** test hook: runs with the images directory once images have arrived and before CRIU reads them (to change one at rest) */
  faultAtRest: ((imagesDir: string) => void | Promise<void>) | undefined;
  /** test hook: runs once prepare has succeeded, before its reply is sent */
  afterPrepare: (() => void | Promise<void>) | undefined;
  /** holdGuard: starts the guard that expires a held copy at its limit (hold.ts; the composition root builds its command) */
  constructor(private readonly rt: Runtime, private readonly version: string, private readonly o: { holdGuard?: (migrationId: string) => void; storeRoots?: StoreRoots } = {}) {
    this.records = new MigrationRecords(rt.paths);
    this.stores = new StoreService(o.storeRoots ?? 'any');
    // a disk that fills after the pre-flight: one clear error naming the filesystem, not an agent failure
    guardSpace(this, ['putImage', 'begin', 'putUpper', 'putLogs', 'putImages', 'prepare'], async (p) => {
      const id = (p as { migrationId?: string }).migrationId;
      const m = id ? await this.records.get(id).catch(() => undefined) : undefined;
      return [this.rt.paths.containers, this.rt.paths.images, ...(m?.staging ? [m.staging] : [])];
    });
  }

  async hello(p: { protocol: number; tool: string; version: string }): Promise<HelloResult> {
    if (p.protocol !== PROTOCOL_VERSION) {
      throw new TsmError('EPROTO', `protocol version mismatch: peer speaks ${p.protocol}, this tsmigrate speaks ${PROTOCOL_VERSION}`, {
        fix: 'install the same tsmigrate version on both hosts',
      });
    }
    const criu = await locateCriu(this.rt.tools.criu).catch(() => undefined);
    const layout = (() => {
      try {
        return detectLayout();
      } catch {
        return undefined;
      }
    })();
    return {
      protocol: PROTOCOL_VERSION,
      tool: 'tsmigrate',
      version: this.version,
      hostname: os.hostname(),
      root: this.rt.paths.root,
      criu: { version: criu?.versionText ?? 'none', ok: criu ? (await criuCheck(criu)).ok : false },
      cgroup: { kind: layout?.kind ?? 'none', controllers: layout ? [...layout.v1.keys(), ...layout.v2Controllers] : [] },
      memDirtyTrack: criu ? (await probeCapabilities(criu)).memDirtyTrack : false,
      challenge: this.challenge,
    };
  }

  preflight(p: PreflightRequest) {
    return peerPreflight(this.rt, this.records, p);
  }

  async putImage(p: { name: string; digest: string }, data: Readable): Promise<StreamResult> {
    await fs.mkdir(this.rt.paths.images, { recursive: true, mode: 0o700 });
    const tmp = path.join(this.rt.paths.images, `.incoming-${randomBytes(4).toString('hex')}.tar`);
    const meter = new Meter();
    try {
      await pipeline(data, meter, createWriteStream(tmp, { mode: 0o600 }));
      const have = await resolveImage(this.rt.paths, p.digest).catch(() => undefined);
      if (!have) {
        const taken = await resolveImage(this.rt.paths, p.name).then(() => true, () => false);
        const name = taken ? `${p.name}-${p.digest.replace(/^sha256:/, '').slice(0, 12)}` : p.name;
        const r = await importImage(this.rt.paths, name, tmp);
        if (r.digest !== p.digest) {
          throw new TsmError('EINTEGRITY', `the image ${p.name} arrived with digest ${r.digest}, expected ${p.digest}`, { fix: 'retry the move' });
        }
      }
      return { bytes: meter.bytes, digest: meter.digest() };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** The one signature check (rt.signing), its refusal worded for the source's user. */
  private async checkSigned(purpose: 'move-begin' | 'move-sums', signed: SignedStatement, what: string): Promise<void> {
    await this.rt.signing.verify(purpose, Buffer.from(signed.statement), signed.signature, what).catch((e: unknown) => {
      if (!(e instanceof TsmError) || e.code !== 'EUNTRUSTED') throw e;
      throw new TsmError('EUNTRUSTED', `the peer (${os.hostname()}, ${this.rt.paths.root}) refuses: ${e.message}`, { fix: `on the peer: ${e.fix ?? ''}` });
    });
  }

  async begin(p: BeginRequest): Promise<{ ok: true }> {
    // before anything is received: a host this one trusts asks for exactly this, on this connection
    await this.checkSigned('move-begin', p.signed, `the move of "${p.name}"`);
    checkBegin(p.signed.statement, this.challenge, p);
    const seen = await this.records.seenEpoch(p.name);
    if (seen > p.epoch) {
      throw new TsmError('EBAD_STATE', `refusing epoch ${p.epoch} of "${p.name}": this host has seen epoch ${seen}`, { fix: 'the source copy is stale; run tsmigrate recover' });
    }
    const existing = await this.records.get(p.migrationId);
    if (existing) throw new TsmError('EBAD_STATE', `migration ${p.migrationId} was already started here`, { fix: 'start a new move' });
    if (await this.rt.store.exists(p.name)) {
      throw new TsmError('EEXIST_CONTAINER', `a container named "${p.name}" already exists on the peer`, { fix: `remove it there first (tsmigrate rm -f ${p.name})` });
    }
    const image = await resolveImage(this.rt.paths, p.config.image.digest);
    // the address as a crash left it (an earlier move's agent killed during its restore) is made usable again
    if (p.network?.ip) await repairLeasesHere(this.rt, { only: p.network.ip });
    await this.records.recordEpoch(p.name, p.epoch);
    const dir = this.rt.paths.container(p.name);
    await fs.mkdir(this.rt.paths.containers, { recursive: true, mode: 0o711 });
    await fs.mkdir(dir, { mode: 0o700 });
    let staging: string | undefined;
    try {
      const layout = rootfsLayout(dir, image.rootfs);
      await fs.mkdir(layout.upper, { recursive: true, mode: 0o755 });
      await this.rt.store.saveConfig(p.config);
      await this.rt.store.saveState(p.name, { status: 'creating', cgroupParent: this.rt.cgroupParent, rootfs: layout, migrationId: p.migrationId, epoch: p.epoch });
      staging = await makeStagingDir(stagingBase(this.rt.paths.root, p.memoryBytes ?? 1 << 30, this.rt.tools.staging), `move-${p.migrationId}`);
      const m: IncomingMigration = { id: p.migrationId, name: p.name, epoch: p.epoch, phase: 'begun', begin: p, received: { upper: [] }, staging, updatedAt: '' };
      await this.records.save(m);
    } catch (e) {
      // a begin cut short leaves nothing: a container "creating" without a record no abort reaches, and it blocks every later begin
      if (staging) await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
      await this.rt.store.remove(p.name).catch(() => undefined);
      throw e;
    }
    this.begunHere.add(p.migrationId);
    return { ok: true };
  }

  private async receiving(id: string): Promise<IncomingMigration> {
    const m = await this.records.must(id);
    if (m.phase !== 'begun' && m.phase !== 'receiving') throw new TsmError('EBAD_STATE', `migration ${id} is ${m.phase}`, { fix: 'start a new move' });
    return m;
  }

  async putUpper(p: PutUpperRequest, data: Readable): Promise<StreamResult> {
    const m = await this.receiving(p.migrationId);
    const upper = path.join(this.rt.paths.container(m.name), 'rootfs', 'upper');
    for (const rel of p.deleted) await safeRemove(upper, rel);
    const r = await receiveTar(data, upper, { compression: p.compression, checksum: p.checksum ?? 'sha256', allowWhiteouts: true, refuseDevices: true, limits: limitsFor('upper', { tarBytes: streamBound(m.begin.upperBytes) }), what: `the upper layer of migration ${m.id}` });
    m.phase = 'receiving';
    m.received.upper.push(r.digest);
    await this.records.save(m);
    return r;
  }

  async putLogs(p: PutLogsRequest, data: Readable): Promise<StreamResult> {
    const m = await this.receiving(p.migrationId);
    return receiveLogs(data, this.rt.paths.container(m.name), p, logPolicyOf(m.begin.config));
  }

  async warm(p: { migrationId: string; bytes: number }): Promise<{ bytes: number; ms: number; poolBytes: number }> {
    const m = await this.receiving(p.migrationId);
    const heldElsewhere = [...this.warmth].reduce((s, [id, w]) => (id === p.migrationId ? s : s + w.bytes), 0);
    const refused = warmRefusal({ requested: p.bytes, declaredMemory: m.begin.memoryBytes ?? 0, heldElsewhere, hostMemory: os.totalmem() });
    if (refused) throw refused;
    const t0 = performance.now();
    this.coolDown(p.migrationId);
    // half for the images: a preallocated tmpfs file that the largest pages image takes
    // over (LiveImageWriter's pool); the rest, or all where that fails, memory for the restore
    const poolFile = path.join(m.staging!, 'images-pool');
    const want = poolSize(Math.floor(p.bytes / 2), filesystemOf(m.staging!));
    const pooled = want ? await preallocateFile(poolFile, want).catch(() => 0) : 0;
    const w = await WarmMemory.reserve(p.bytes - pooled);
    const warm = { memory: w, pool: pooled ? poolFile : undefined, bytes: w.bytes + pooled };
    // aborted while the memory was faulted in: give it back at once
    const now = await this.records.get(p.migrationId);
    this.warmth.set(p.migrationId, warm);
    if (now?.phase !== 'begun' && now?.phase !== 'receiving') this.coolDown(p.migrationId);
    return { bytes: w.bytes + pooled, ms: Math.round(performance.now() - t0), poolBytes: pooled };
  }

  /** give back what warm() holds for a migration */
  private coolDown(id: string): void {
    const w = this.warmth.get(id);
    w?.memory.releaseAll();
    // taken over by an image (renamed) or not: no file of that name is left
    if (w?.pool) rmSync(w.pool, { force: true });
    this.warmth.delete(id);
  }

  async putImages(p: PutImagesRequest, data: Readable): Promise<PutImagesResult> {
    const m = await this.receiving(p.migrationId);
    if (p.restore && (p.format !== 'records' || JSON.stringify(m.received.upper) !== JSON.stringify(p.restore.upper))) {
      throw p.format !== 'records'
        ? new TsmError('EPROTO', 'a restore while the images arrive needs the record format', { fix: 'install the same tsmigrate version on both hosts and retry' })
        : corrupted(m.id);
    }
    const images = path.join(m.staging!, 'images');
    await fs.rm(images, { recursive: true, force: true });
    // the images take the pool file and the warm memory as they arrive; the restore takes the rest
    const warm = this.warmth.get(p.migrationId);
    const checksum = p.checksum ?? 'sha256';
    // the memory the source counted (0 where its cgroup gave no figure: then the preset's bounds)
    const imageLimits = m.begin.memoryBytes ? limitsFor('criu-images', { tarBytes: streamBound(m.begin.memoryBytes) }) : PRESETS['criu-images'];
    const writer = warm ? { beforeWrite: warm.memory.beforeUse, ...(warm.pool ? { pool: warm.pool } : {}) } : {};
    let early: RestoreWhileReceiving | undefined;
    if (p.restore) {
      await fs.mkdir(images, { mode: 0o700 });
      // at the manifest the pool is out of play and the restore needs the memory held for it
      // where the streamer cannot run, prepare restores after the transfer, as without `restore`
      early = await RestoreWhileReceiving.start(images, this.rt.tools.streamer, (w) => this.restoreHeld(m, images, w), () => this.coolDown(m.id)).catch((e: Error) => {
        this.rt.logger.warn(`migration ${m.id}: restoring after the transfer: ${e.message}`);
        return undefined;
      });
    }
    const records = p.format === 'records'
      ? receiveRecords(data, images, { compression: p.compression, checksum, inflate: imageLimits.inflate, ...writer, ...(p.restore ? { dirExists: true } : {}), ...(early ? { onManifest: early.manifest, onWritten: early.written } : {}) })
      : undefined;
    let result: PutImagesResult;
    let files: ImageSum[] | undefined;
    if (early && records) {
      const { value, held, tailMs, criuTailMs } = await early.settle(records);
      this.held.set(m.id, held);
      ({ files, ...result } = value);
      result.restore = { setupMs: held.timings.setupMs, criuMs: held.timings.criuMs, tailMs, criuTailMs };
    } else if (records) {
      ({ files, ...result } = await records);
    } else {
      result = await receiveTar(data, images, { compression: p.compression, checksum, refuseDevices: true, limits: imageLimits, what: `the images of migration ${m.id}` });
    }
    m.phase = 'receiving';
    m.received.images = result.digest;
    if (files) m.received.files = files;
    await this.records.save(m);
    return result;
  }

  async probe(p: { bytes: number; compression?: 'zstd' | 'none'; checksum?: Checksum }, data: Readable): Promise<StreamResult> {
    // checksummed as received, decompressed as a real transfer would be, then dropped
    const meter = new Meter(undefined, p.checksum ?? 'sha256');
    const drop = new Writable({ write: (_c, _e, cb) => cb() });
    if (p.compression === 'zstd') await pipeline(data, meter, inflateZstd({ ...PRESETS.upper.inflate, maxBytes: p.bytes }, 'the probe'), drop);
    else await pipeline(data, meter, drop);
    return { bytes: meter.bytes, digest: meter.digest() };
  }

  async prepare(p: { migrationId: string; expect: { images: string; upper: string[] }; signed: SignedStatement }) {
    const m = await this.receiving(p.migrationId);
    if (m.received.images !== p.expect.images || JSON.stringify(m.received.upper) !== JSON.stringify(p.expect.upper)) throw corrupted(m.id);
    // what arrived is what a trusted host signed, before the restored copy can ever run
    await this.checkSigned('move-sums', p.signed, `the move of "${m.name}"`);
    checkSums(p.signed.statement, this.challenge, m.id, { images: m.received.images, upper: m.received.upper });
    const t0 = performance.now();
    // restored while the images arrived (putImages with restore), or now
    const held = this.held.get(m.id) ?? (await this.restoreHeld(m, path.join(m.staging!, 'images')));
    this.held.set(m.id, held);
    m.phase = 'prepared';
    m.holdUntil = holdUntil(new Date(), m.begin.holdMs);
    await this.records.save(m);
    this.o.holdGuard?.(m.id);
    await this.afterPrepare?.();
    return { restoreMs: performance.now() - t0, initPid: held.initPid, setupMs: held.timings.setupMs, criuMs: held.timings.criuMs };
  }

  /** The migration's container restored from `images`, held stopped (arriving: CRIU asks the image streamer for them as they arrive). */
  private async restoreHeld(m: IncomingMigration, images: string, arriving?: ArrivingImages): Promise<HeldContainer> {
    await this.faultBeforeRestore?.();
    await this.faultAtRest?.(images);
    // from the files: checked right before CRIU reads them (while they arrive, the streamer sums what it hands CRIU)
    if (!arriving && m.received.files) await checkAtRest(images, m.received.files);
    this.coolDown(m.id);
    const b = m.begin;
    const image = await resolveImage(this.rt.paths, b.config.image.digest);
    return restoreTree(this.rt, {
      config: b.config,
      dumped: b.network,
      clone: false,
      leaseOwner: b.leaseOwner,
      migrationId: m.id,
      stdio: b.stdio,
      criuOptions: b.criuOptions,
      imageRootfs: image.rootfs,
      imagesDir: images,
      criu: await locateCriu(this.rt.tools.criu),
      extraState: { migrationId: m.id, epoch: m.epoch },
      stream: arriving !== undefined,
      ...(arriving ?? {}),
      ...(b.criuDeadline ? { criuDeadline: b.criuDeadline } : {}),
    });
  }

  async commit(p: { migrationId: string }): Promise<{ resumeMs: number }> {
    const first = await this.records.must(p.migrationId);
    // against an abort or the hold's expiry (hold.ts): one of them wins, the other sees it
    return withMigrationLock(this.rt, first.name, () => this.commitLocked(p.migrationId));
  }

  private async commitLocked(id: string): Promise<{ resumeMs: number }> {
    const m = await this.records.must(id);
    if (m.phase === 'committed') return { resumeMs: 0 };
    if (m.phase === 'aborted') throw abortedError(m);
    if (m.phase !== 'prepared') throw new TsmError('EBAD_STATE', `migration ${m.id} is ${m.phase}, not prepared`, { fix: 'run tsmigrate recover on the source' });
    const t0 = performance.now();
    this.coolDown(m.id);
    const held = this.held.get(m.id);
    if (held) await held.resume();
    else await this.resumeFromDisk(m);
    // ownership of the address passes now; left undone, recover's lease repair does it (the record says committed)
    await settleMigration(this.rt.network.leaseDir, this.rt.paths.root, m.id).catch((e: Error) => this.rt.logger.warn(`migration ${m.id}: the address lease stays to settle: ${e.message}`));
    m.phase = 'committed';
    await this.records.save(m);
    this.held.delete(m.id);
    const resumeMs = performance.now() - t0;
    // the images are no longer needed: delete them after answering, not inside the downtime
    if (m.staging) setImmediate(() => void fs.rm(m.staging!, { recursive: true, force: true }).catch(() => undefined));
    return { resumeMs };
  }

  /** A new agent (after the first one lost its connection) resumes a held tree from the records. */
  private async resumeFromDisk(m: IncomingMigration): Promise<void> {
    const cg = this.rt.cgroups(m.name);
    for (const pid of await cg.pids()) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    const st = await this.rt.store.state(m.name);
    st.status = 'running';
    // restoreTree recorded the pipes it handed the tree; a pty's key is read from the init (so is an older agent's record's)
    const tty = Boolean((await this.rt.store.config(m.name)).tty);
    const stdio = await stdioOf(tty ? { ...st, stdio: undefined } : st, tty);
    if (stdio) st.stdio = stdio;
    await this.rt.store.saveState(m.name, st);
  }

  async abort(p: { migrationId: string }): Promise<{ ok: true }> {
    const first = await this.records.get(p.migrationId);
    if (!first || first.phase === 'aborted') return { ok: true };
    const locked = () =>
      withMigrationLock(this.rt, first.name, async () => {
        const m = await this.records.get(p.migrationId);
        if (m) await this.abortLocked(m);
      });
    await locked().catch(async (e: unknown) => {
      if (!isNoSpace(e) || (first.phase !== 'begun' && first.phase !== 'receiving')) throw e;
      // the disk filled while this migration received: what it wrote goes first, so that the lock and the record fit
      if (first.staging) await fs.rm(first.staging, { recursive: true, force: true });
      await fs.rm(path.join(this.rt.paths.container(first.name), 'rootfs', 'upper'), { recursive: true, force: true });
      await locked();
    });
    return { ok: true };
  }

  /** Under the container's lock: remove what the migration made here; `reason` 'expired' from the hold guard. */
  async abortLocked(m: IncomingMigration, reason?: 'expired'): Promise<void> {
    if (m.phase === 'aborted') return;
    if (m.phase === 'committed') throw new TsmError('EBAD_STATE', `migration ${m.id} is already committed on the peer`, { fix: 'the container runs on the peer; nothing to undo' });
    this.coolDown(m.id);
    const held = this.held.get(m.id);
    if (held) await held.rollback();
    this.held.delete(m.id);
    if (await this.rt.store.exists(m.name)) {
      const view = await loadView(this.rt, m.name).catch(() => undefined);
      if (view) await releaseResources(this.rt, m.name, view).catch(() => undefined);
      await this.rt.store.remove(m.name);
    }
    // what the held tree's rollback did not reach (an agent killed during its restore): lent leases go back, claims go
    await undoMigration(this.rt.network.leaseDir, this.rt.paths.root, m.id);
    if (m.staging) await fs.rm(m.staging, { recursive: true, force: true });
    m.phase = 'aborted';
    if (reason) m.reason = reason;
    await this.records.save(m);
  }

  async status(p: { migrationId: string }): Promise<{ phase: string }> {
    return { phase: (await this.records.get(p.migrationId))?.phase ?? 'unknown' };
  }

  async containerStatus(p: { name: string }): Promise<ContainerStatusResult> {
    const epochSeen = await this.records.seenEpoch(p.name);
    if (!(await this.rt.store.exists(p.name))) return { status: 'absent', epochSeen };
    const view = await loadView(this.rt, p.name);
    return { status: view.status, epochSeen: Math.max(epochSeen, view.state.epoch ?? 0) };
  }

  // ---- a checkpoint store kept on this host (the key never comes here) ----
  private readonly stores: StoreService;
  readonly storeOpen: AgentApi['storeOpen'] = (p) => this.stores.storeOpen(p);
  readonly storeLock: AgentApi['storeLock'] = (p) => this.stores.storeLock(p);
  readonly storeUnlock: AgentApi['storeUnlock'] = (p) => this.stores.storeUnlock(p);
  readonly storeHas: AgentApi['storeHas'] = (p) => this.stores.storeHas(p);
  readonly storePutChunks: AgentApi['storePutChunks'] = (p, d) => this.stores.storePutChunks(p, d);
  readonly storeGetChunks: AgentApi['storeGetChunks'] = (p) => this.stores.storeGetChunks(p);
  readonly storeListSnapshots: AgentApi['storeListSnapshots'] = (p) => this.stores.storeListSnapshots(p);
  readonly storeGetSnapshot: AgentApi['storeGetSnapshot'] = (p) => this.stores.storeGetSnapshot(p);
  readonly storePutSnapshot: AgentApi['storePutSnapshot'] = (p, d) => this.stores.storePutSnapshot(p, d);
  readonly storeDeleteSnapshot: AgentApi['storeDeleteSnapshot'] = (p) => this.stores.storeDeleteSnapshot(p);
  readonly storeGetIndex: AgentApi['storeGetIndex'] = (p) => this.stores.storeGetIndex(p);
  readonly storePutIndex: AgentApi['storePutIndex'] = (p, d) => this.stores.storePutIndex(p, d);
  readonly storeVerify: AgentApi['storeVerify'] = (p) => this.stores.storeVerify(p);
  readonly storeCollect: AgentApi['storeCollect'] = (p) => this.stores.storeCollect(p);
  readonly storeStats: AgentApi['storeStats'] = (p) => this.stores.storeStats(p);

  /** The source went away: undo what it began here and is not prepared yet (never another connection's), release store locks. */
  async onDisconnect(): Promise<void> {
    for (const id of [...this.warmth.keys()]) this.coolDown(id);
    await this.stores.close();
    for (const m of await this.records.list()) {
      if (this.begunHere.has(m.id) && (m.phase === 'begun' || m.phase === 'receiving')) await this.abort({ migrationId: m.id }).catch(() => undefined);
    }
  }
}

function corrupted(id: string): TsmError {
  return new TsmError('EINTEGRITY', `migration ${id}: the data arrived corrupted (the digest of what arrived differs from what was sent)`, {
    fix: 'nothing was changed; retry the move, and if it happens again check the network path and memory of both hosts',
  });
}
