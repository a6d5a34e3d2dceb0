import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { stdioOf } from '../container/stdio.js';
import { assertAllowed, loadView } from '../container/view.js';
import { locateCriu } from '../criu/binary.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import type { Runtime } from '../runtime/context.js';
import { withLock } from '../state/lock.js';
import { requireRoot } from '../util/root.js';
import { validateName } from '../util/name.js';
import { learnRates } from './estimate.js';
import { pastMoves, recordFailedMove, recordMove } from './history.js';
import { MoveJournal } from './journal.js';
import { LocalSource, type SourceFaults } from './local-source.js';
import { DEFAULT_TIMING, runMigration, type MoveSettings, type MoveTiming } from './machine.js';
import { DEFAULT_MAX_DOWNTIME_MS, migrationId, type CompressChoice } from './plan.js';
import type { MoveEvent, MoveReport, PeerConnection } from './report.js';

export type { MoveEvent, MoveReport, PeerConnection } from './report.js';

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
  /** the downtime bound (plan.ts planMigration): undefined for the default, null for none */
  maxDowntimeMs?: number | null;
  /** how long to wait on the peer (machine.ts DEFAULT_TIMING) */
  timing?: Partial<MoveTiming>;
  /** holds the freeze for a process that outlives this one */
  guardFreeze?: (migrationId: string) => Promise<{ release(): Promise<void> }>;
  /** test seams of the real source, set only by tests' own composition */
  faults?: SourceFaults;
}

/**
 * Move a running container to another host: the composition of the state
 * machine (machine.ts) with the real source (local-source.ts) and a peer.
 * Holds the container's lock throughout.
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
  return withLock(rt.store.lockDir(req.name), `container ${req.name}`, async () => {
    const view = await loadView(rt, req.name);
    assertAllowed(view, 'move');
    const stdio = await stdioOf(view.state, Boolean(view.config.tty));
    const initPid = view.state.initPid;
    if (!initPid || !stdio) {
      throw new TsmError('EBAD_STATE', `container "${req.name}" has no recorded ${initPid ? 'stdout/stderr pipes (CRIU hands them over on restore)' : 'init'}`, { fix: 'restart it with tsmigrate run' });
    }
    const criu = await locateCriu(rt.tools.criu);
    const image = await resolveImage(rt.paths, view.config.image.digest);
    const epoch = (view.state.epoch ?? 0) + 1;
    const id = migrationId(randomBytes(4).toString('hex'), new Date());
    const journal = await MoveJournal.create(rt.paths, id, req.name, req.host, epoch);
    const source = new LocalSource(rt, id, { ...view, state: { ...view.state, initPid, stdio } }, stdio, image, criu, req.faults);
    const settings: MoveSettings = {
      compress: req.compress,
      warmMemory: req.warmMemory !== false,
      criuStream: req.criuStream,
      restoreWhileReceiving: req.restoreWhileReceiving !== false,
      maxDowntimeMs: req.maxDowntimeMs === undefined ? DEFAULT_MAX_DOWNTIME_MS : req.maxDowntimeMs,
    };
    const report = await runMigration(
      {
        source, connect, connectForCleanup, journal,
        local: { hostname: os.hostname(), root: rt.paths.root },
        rates: learnRates(await pastMoves(rt.paths)),
        criuDeadline: rt.criuDeadline,
        timing: { ...DEFAULT_TIMING, ...req.timing },
        ...(req.guardFreeze ? { guardFreeze: () => req.guardFreeze!(id) } : {}),
        signing: rt.signing,
        logger: rt.logger,
      },
      { id, name: req.name, host: req.host, epoch, settings, ...(req.signal ? { signal: req.signal } : {}), emit: req.onEvent ?? (() => undefined) },
    ).catch(async (e: unknown) => {
      await recordFailedMove(rt.paths, { id, name: req.name, host: req.host }, e, { phase: journal.phase, begun: journal.has('begun'), interrupted: Boolean(req.signal?.aborted) });
      throw e;
    });
    await recordMove(rt.paths, { id, name: req.name, host: req.host, outcome: 'committed', report, at: report.at });
    return report;
  });
}
