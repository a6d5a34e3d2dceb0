import { DEFAULT_HOLD_MS } from '../agent/api.js';
import type { CriuDeadlineSettings } from '../criu/deadline.js';
import { TsmError } from '../errors/errors.js';
import { assertSameHash } from '../transfer/receive.js';
import type { Logger } from '../util/logger.js';
import { UndoStack } from '../util/undo.js';
import { startFrozenBudget, type FrozenBudget } from './budget.js';
import { beginStatementText, signStatement, sumsStatementText } from './statement.js';
import type { Signing } from '../sign/signing.js';
import type { Rates } from './estimate.js';
import type { MoveJournal } from './journal.js';
import { abortOnPeer, commitOnPeer, HELLO, untilAborted } from './peer-calls.js';
import { namedPeerError, preflightAsk, preflightRefusal } from './peer-check.js';
import { isFinal } from './phases.js';
import { planMigration, type CompressChoice, type MigrationPlan } from './plan.js';
import type { MoveEvent, MoveReport, PeerConnection } from './report.js';
import type { MoveSource, SourceFacts } from './source.js';

/** The user's choices for one move (flags), resolved. */
export interface MoveSettings {
  compress: CompressChoice;
  warmMemory: boolean;
  criuStream: boolean | undefined;
  restoreWhileReceiving: boolean;
  /** null: no bound */
  maxDowntimeMs: number | null;
}

/** How long the machine waits on the peer (tests shorten them). */
export interface MoveTiming {
  /** the commit is retried (reconnecting) until this long after the decision */
  commitDeadlineMs: number;
  /** one abort call */
  abortTimeoutMs: number;
  /** one commit call */
  callTimeoutMs: number;
  /** how long the peer holds a restored copy for the source's decision (it removes it after) */
  holdMs: number;
}

export const DEFAULT_TIMING: MoveTiming = { commitDeadlineMs: 20_000, abortTimeoutMs: 30_000, callTimeoutMs: 15_000, holdMs: DEFAULT_HOLD_MS };

export interface MachineDeps {
  source: MoveSource;
  connect: () => Promise<PeerConnection>;
  /** for the rollback: a connection that does not obey the interrupt that caused it */
  connectForCleanup: () => Promise<PeerConnection>;
  journal: MoveJournal;
  /** this host, to tell a peer on the same machine (local test hosts share the address leases) */
  local: { hostname: string; root: string };
  rates: Rates;
  criuDeadline: CriuDeadlineSettings;
  timing: MoveTiming;
  /** holds the freeze for a process that outlives this one (freeze-guard.ts); released once the move is final */
  guardFreeze?: () => Promise<{ release(): Promise<void> }>;
  /** signs what the peer is asked to restore (move/statement.ts) */
  signing: Pick<Signing, 'sign'>;
  logger: Logger;
}

export interface MigrationRequest {
  id: string;
  name: string;
  host: string;
  epoch: number;
  settings: MoveSettings;
  signal?: AbortSignal;
  emit: (e: MoveEvent) => void;
}

const ms = (a: number, b: number) => Math.round((b - a) * 10) / 10;

/**
 * One move, top to bottom. Each step journals the phase it reaches
 * (phases.ts says which may follow which) and pushes its undo: before the
 * point of no return any failure unwinds them newest first (the source's
 * link up and its copy thawed before the peer is told), and the journal ends
 * at 'aborted', or at 'abort-pending' when the peer could not be told (recover,
 * the daemon or the next command touching the container tells it later).
 * After the decision the source only asks the peer to commit; its copy is
 * removed only once the peer confirmed. Never two running copies, never none.
 */
export async function runMigration(d: MachineDeps, r: MigrationRequest): Promise<MoveReport> {
  const { source, journal } = d;
  const sig = r.signal;
  const emit = r.emit;
  const undo = new UndoStack(d.logger);
  const t0 = performance.now();
  let conn: PeerConnection | undefined;
  let budget: FrozenBudget | undefined;
  let guard: { release(): Promise<void> } | undefined;
  let decided = false;
  let peerTold = true;
  try {
    // ---- before anything is frozen: connect, check, plan, send what can go while it runs ----
    emit({ phase: 'connect' });
    conn = await d.connect();
    const peer = conn.agent;
    const hello = await peer.hello(HELLO);
    const facts = await source.inspect();
    const sameMachine = hello.hostname === d.local.hostname && hello.root !== d.local.root;
    const leaseOwner = sameMachine ? { root: d.local.root, container: r.name } : null;
    emit({ phase: 'preflight' });
    const pre = await peer.preflight(preflightAsk(facts, { leaseOwner, epoch: r.epoch }));
    const refused = preflightRefusal(r.host, r.name, pre);
    if (refused) throw refused;
    sig?.throwIfAborted();
    await journal.append('preflight-ok');
    let imageBytes = 0;
    if (pre.needImage) {
      emit({ phase: 'image', message: `sending image ${facts.image.name}` });
      imageBytes = await source.sendImage(peer, sig);
    }
    // measured through the connection, before the freeze (this also warms both ends up)
    emit({ phase: 'probe' });
    const link = await source.measureLink(peer, { plain: r.settings.compress !== 'on', zstd: r.settings.compress !== 'off' });
    const plan = planMigration({
      compress: r.settings.compress, link, memoryBytes: facts.memoryBytes, upperBytes: facts.upperBytes, criuStream: r.settings.criuStream, staging: facts.staging,
      restoreWhileReceiving: r.settings.restoreWhileReceiving, warmMemory: r.settings.warmMemory, maxDowntimeMs: r.settings.maxDowntimeMs, rates: d.rates, fileLocks: facts.fileLocks,
    });
    if (plan.refusal) {
      throw new TsmError('EDOWNTIME', `"${r.name}" cannot move to ${r.host} within its bound: ${plan.refusal}`, {
        fix: 'nothing was frozen; allow more with --max-downtime (or off), move over a faster link, or when the container holds less memory',
      });
    }
    sig?.throwIfAborted();
    // the peer's part goes last on a rollback: the source must run again whatever the peer does.
    // Pushed before the call: a begin whose reply was lost may have made a copy there
    undo.push('abort on the peer', async () => {
      // cut short (an interrupt, the bound): the old connection may be choked with the stream's
      // backlog, and the peer aborts what it was receiving when it goes; tell it over a new one
      const stale = Boolean(sig?.aborted || budget?.expired());
      if (stale) await conn?.close().catch(() => undefined);
      peerTold = await abortOnPeer(stale ? undefined : conn, d.connectForCleanup, r.id, d.timing.abortTimeoutMs);
    });
    const vouched = { migrationId: r.id, epoch: r.epoch, name: r.name, config: facts.config, network: facts.network, stdio: facts.stdio, criuOptions: plan.criu };
    await peer.begin({
      ...vouched, leaseOwner, memoryBytes: facts.memoryBytes, upperBytes: facts.upperBytes, criuDeadline: { ...d.criuDeadline }, holdMs: d.timing.holdMs,
      signed: await signStatement(d.signing, 'move-begin', beginStatementText(hello.challenge, vouched)),
    });
    await journal.append('begun', { useZstd: plan.useZstd, estimateMs: plan.estimate.totalMs, maxDowntimeMs: plan.maxDowntimeMs });
    emit({ phase: 'upper' });
    const running = await source.sendRunning(peer, r.id, plan, sig, emit);
    await journal.append('upper-sent', { bytes: running.upperBase.bytes });
    const preCopy = hello.memDirtyTrack
      ? 'not used: memory pre-copy is not implemented yet (all memory is dumped while frozen)'
      : 'not available: this kernel has no soft-dirty page tracking (criu check --feature mem_dirty_track), so all memory is dumped while frozen';
    emit({ phase: 'pre-copy', message: preCopy });
    sig?.throwIfAborted();
    if (plan.warm.sourceBytes) emit({ phase: 'warm', totalBytes: plan.warm.sourceBytes + plan.warm.peerBytes });
    const warmed = await source.warm(peer, r.id, plan, sig);
    sig?.throwIfAborted();
    await source.prepareImages(plan);
    guard = await d.guardFreeze?.();

    // ---- the downtime: frozen from here until the peer has resumed, within plan.maxDowntimeMs ----
    const tFreeze = performance.now();
    await journal.append('frozen');
    undo.push('thaw the source copy', () => source.thaw());
    emit({ phase: 'freeze' });
    source.releaseWarm();
    let phase = 'the freeze';
    budget = startFrozenBudget(plan.maxDowntimeMs, sig, () => phase);
    await source.freeze();
    const tFrozen = performance.now();
    emit({ phase: 'dump' });
    phase = 'the dump and transfer';
    const sent = await source.dumpAndSend(peer, r.id, plan, running, budget.signal, emit, () => undo.push('bring the link up', () => source.linkUp()));
    await journal.append('dumped', { dumpMs: ms(tFrozen, sent.dumpedAt) });
    budget.signal.throwIfAborted();
    emit({ phase: 'transfer' });
    // a restore during the transfer went on for tailMs after the last byte: that is the restore's part
    const early = sent.images.peer.restore;
    const tSent = performance.now() - (early?.tailMs ?? 0);
    await journal.append('sent', { images: sent.images.bytes, delta: sent.upperDelta.bytes });
    assertSameHash('memory images', sent.images.digest, sent.images.peer.digest);
    emit({ phase: 'restore' });
    phase = "the peer's restore";
    const expect = { images: sent.images.digest, upper: [running.upperBase.digest, sent.upperDelta.digest] };
    const signed = await signStatement(d.signing, 'move-sums', sumsStatementText(hello.challenge, r.id, expect));
    const prep = await untilAborted(peer.prepare({ migrationId: r.id, expect, signed }), budget.signal);
    const tRestored = performance.now();
    await journal.append('prepared', { restoreMs: prep.restoreMs });
    budget.signal.throwIfAborted();

    // ---- the point of no return: from here the source only asks the peer to commit ----
    budget.stop();
    await journal.append('decided');
    decided = true;
    emit({ phase: 'resume' });
    // reconnections for the commit must not obey the interrupt: past the point of no return it only delays the commit
    const outcome = await commitOnPeer(conn, d.connectForCleanup, r.id, d.timing.commitDeadlineMs, d.timing.callTimeoutMs);
    if (outcome === 'peer-gave-up') {
      // the peer removed its held copy (its hold limit, or recover there): ours, never killed, runs again
      await source.linkUp().catch(() => undefined);
      await source.thaw();
      await journal.append('aborted', { by: 'peer', error: 'the peer gave its held copy up before the commit' });
      throw new TsmError('EMOVE_ABORTED', `move ${r.id} of "${r.name}": ${r.host} gave its restored copy up before the commit reached it`, {
        fix: 'the container runs here as before; move it again',
      });
    }
    const tResumed = performance.now();
    await journal.append('committed');
    undo.commit();

    // ---- the source copy goes: it was frozen all along ----
    emit({ phase: 'cleanup' });
    await source.removeCopy();
    await journal.append('done');
    return report(r, plan, facts.locks, {
      downtime: {
        freezeMs: ms(tFreeze, tFrozen), dumpMs: ms(tFrozen, sent.dumpedAt), transferMs: ms(sent.dumpedAt, tSent),
        restoreMs: ms(tSent, tRestored), resumeMs: ms(tRestored, tResumed), totalMs: ms(tFreeze, tResumed),
      },
      restoreParts: { setupMs: prep.setupMs, criuMs: prep.criuMs, duringTransfer: Boolean(early), ...(early?.criuTailMs !== undefined ? { criuAfterLastByteMs: early.criuTailMs } : {}) },
      preCopy,
      warmMemory: warmed,
      images: sent.imagesVia,
      compression: {
        used: plan.useZstd, linkMBps: Math.round(link.plainBps / 1e6), linkZstdMBps: Math.round(link.zstdBps / 1e6), zstdMBps: Math.round(link.zstd.bps / 1e6),
        ratio: sent.images.tarBytes ? Math.round((sent.images.bytes / sent.images.tarBytes) * 100) / 100 : 1,
      },
      bytes: { upperBase: running.upperBase.bytes, upperDelta: sent.upperDelta.bytes, images: sent.images.bytes, imagesTar: sent.images.tarBytes, image: imageBytes, logs: running.logsBytes + sent.logsBytes },
      network: { ip: facts.network?.ip ?? null, keptIp: Boolean(facts.network?.ip) },
      totalMs: ms(t0, performance.now()),
    });
  } catch (caught) {
    // an interrupt or the bound shows as what it is, not as the error of the step it cut short
    const e = !decided && budget?.signal.aborted ? (budget.signal.reason as Error) : sig?.aborted && !decided ? (sig.reason as Error) : (caught as Error);
    if (decided) {
      if (isFinal(journal.phase)) throw e;
      throw new TsmError('EMOVE_UNFINISHED', `move ${r.id} of "${r.name}" was decided but not finished: ${e.message}`, {
        fix: 'run tsmigrate recover (the source copy stays frozen until the peer confirms or gives its copy up)',
        cause: e,
      });
    }
    emit({ phase: 'rollback', message: e.message });
    await undo.unwind();
    if (peerTold) {
      await journal.append('aborted', { error: e.message });
      throw namedPeerError(r.host, e);
    }
    await journal.append('abort-pending', { error: e.message });
    throw new TsmError((e as TsmError).code ?? 'EINTERNAL', `${namedPeerError(r.host, e).message} (the container runs here; ${r.host} could not be told to remove its partial copy yet)`, {
      fix: 'tsmigrate recover, the daemon or the next command on this container tells it',
      cause: e,
    });
  } finally {
    budget?.stop();
    source.releaseWarm();
    await source.cleanup().catch((x: Error) => d.logger.warn(`move ${r.id}: cleanup: ${x.message}`));
    if (conn) await conn.close().catch(() => undefined);
    // a move left undecided-but-unfinished is the guard's to finish when this process is gone
    if (guard && isFinal(journal.phase)) await guard.release().catch(() => undefined);
  }
}

function report(
  r: MigrationRequest,
  plan: MigrationPlan,
  locks: SourceFacts['locks'],
  m: Pick<MoveReport, 'downtime' | 'restoreParts' | 'preCopy' | 'warmMemory' | 'images' | 'compression' | 'bytes' | 'network' | 'totalMs'>,
): MoveReport {
  return {
    id: r.id, name: r.name, host: r.host, epoch: r.epoch,
    ...m,
    estimate: plan.estimate,
    maxDowntimeMs: plan.maxDowntimeMs,
    tcpEstablished: plan.criu.tcpEstablished,
    carried: { tcpEstablished: plan.criu.tcpEstablished, fileLocks: plan.criu.fileLocks, locks },
    at: new Date().toISOString(),
  };
}
