import { promises as fs } from 'node:fs';
import path from 'node:path';
import { stagingBase } from '../checkpoint/staging.js';
import { unlockCriuNetwork } from '../criu/leftovers.js';
import { planCriuDeadline } from '../criu/deadline.js';
import { findCriuRuns, waitOrKill } from '../criu/orphan.js';
import { isTsmError } from '../errors/errors.js';
import type { Runtime } from '../runtime/context.js';
import { withLockWaiting } from '../state/lock.js';
import type { Logger } from '../util/logger.js';
import { journalDir, MoveJournal, type MovePhase } from './journal.js';
import type { PeerConnection } from './report.js';
import { isFinal } from './phases.js';
import { recoverMove, type RecoverAction } from './recover.js';
import { runSourceCopyAgain } from './source-copy.js';

/**
 * The freeze watchdog's work once the mover let go (freeze-guard.ts): the
 * source side of `recover` (recover.ts recoverMove) for one migration,
 * retried with backoff until it converges. Before `decided`, first (under the
 * container's lock) a CRIU dump the mover left running is let finish and the
 * copy here runs again; then the peer is told to abort (the journal says
 * 'abort-pending' while it cannot be reached). From `decided` on the peer is
 * asked to commit and the copy here stays frozen until it answers (where it
 * gave its held copy up, the copy here runs again).
 */
export interface SourceGuardPorts {
  /** the journal as it is on disk now */
  journal(): Promise<{ phase: MovePhase; decided: boolean }>;
  /** under the container's lock: CRIU's dump has ended, the copy here runs */
  resumeHere(): Promise<void>;
  /** recover.ts recoverMove for this migration (takes the lock itself) */
  recover(): Promise<RecoverAction>;
  sleep(ms: number): Promise<void>;
  now(): number;
  log(msg: string): void;
}

export interface GuardOutcome {
  outcome: 'nothing to do' | 'rolled back' | 'completed' | 'gave up';
  /** the journal's last phase */
  phase: MovePhase;
}

/** How long the guard keeps trying to reach the peer (a decided move stays frozen meanwhile; `recover` takes over after). */
export const GUARD_RETRY_MS = 10 * 60_000;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** a live holder of the container's lock (the mover finishing, a `recover`): asked again this often */
const BUSY_DELAY_MS = 100;

export async function guardMove(p: SourceGuardPorts, o: { retryForMs?: number } = {}): Promise<GuardOutcome> {
  const until = p.now() + (o.retryForMs ?? GUARD_RETRY_MS);
  let delay = FIRST_DELAY_MS;
  let acted: GuardOutcome['outcome'] = 'nothing to do';
  let resumed = false;
  for (;;) {
    const j = await p.journal();
    if (isFinal(j.phase)) return { outcome: acted, phase: j.phase };
    try {
      if (!j.decided && !resumed) {
        await p.resumeHere();
        resumed = true;
        acted = 'rolled back';
      }
      const r = await p.recover();
      if (r.action === 'completed' || r.action === 'rolled back') acted = r.action;
      p.log(`${r.action}: ${r.detail}`);
    } catch (e) {
      if (isTsmError(e, 'EBUSY') && p.now() < until) {
        await p.sleep(BUSY_DELAY_MS);
        continue;
      }
      p.log(`not yet: ${(e as Error).message}`);
    }
    const now = await p.journal();
    if (isFinal(now.phase)) return { outcome: acted, phase: now.phase };
    if (p.now() >= until) return { outcome: 'gave up', phase: now.phase };
    await p.sleep(delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}

export interface SourceGuardOptions {
  migrationId: string;
  connectTo: (host: string) => Promise<PeerConnection>;
  logger: Logger;
}

/** The ports on this host: the journal under the state root, the container's lock, CRIU, the peer over `connectTo`. */
export function sourceGuardPorts(rt: Runtime, o: SourceGuardOptions): SourceGuardPorts {
  const file = path.join(journalDir(rt.paths), `${o.migrationId}.jsonl`);
  const load = () => MoveJournal.load(file);
  const locked = async <T>(fn: (j: MoveJournal) => Promise<T>): Promise<T> => {
    const { name } = (await load()).record;
    return withLockWaiting(rt.store.lockDir(name), `container ${name}`, 10_000, async () => fn(await load()));
  };
  return {
    journal: async () => {
      const j = await load();
      return { phase: j.phase, decided: j.has('decided') };
    },
    resumeHere: () =>
      locked(async (j) => {
        const { name } = j.record;
        for (const staging of await moveStaging(rt.paths.root, rt.tools.staging, o.migrationId)) await endOrphanDump(rt, name, staging, o.logger);
        await runSourceCopyAgain(rt, name);
      }),
    recover: async () => recoverMove(rt, await load(), o.connectTo),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
    log: (m) => o.logger.info(`guard ${o.migrationId}: ${m}`),
  };
}

/** The mover's staging directories (local-source.ts: `<base>/move-<id>-XXXXXX`, the base in tmpfs or under the root). */
async function moveStaging(root: string, override: string | undefined, id: string): Promise<string[]> {
  const bases = [...new Set([stagingBase(root, 0, override), path.join(root, 'staging'), '/dev/shm/tsmigrate'])];
  const out: string[] = [];
  for (const b of bases) {
    for (const n of await fs.readdir(b).catch(() => [] as string[])) if (n.startsWith(`move-${id}-`)) out.push(path.join(b, n));
  }
  return out;
}

/** A `criu dump` the dead mover started: it may finish (bounded by its deadline); then its network lock and the staging go. */
async function endOrphanDump(rt: Runtime, name: string, staging: string, log: Logger): Promise<void> {
  const pids = await findCriuRuns('dump', path.join(staging, 'images'));
  if (pids.length) {
    const stats = await rt.cgroups(name).stats().catch(() => ({ memoryBytes: 0 }));
    const deadline = planCriuDeadline(rt.criuDeadline, { memoryBytes: stats.memoryBytes ?? 0 });
    log.info(`waiting for criu dump (pid ${pids.join(', ')}) to end, at most ${Math.round(deadline.hardMs / 1000)} s`);
    if (await waitOrKill(pids, deadline.hardMs)) log.warn(`criu dump (pid ${pids.join(', ')}) was killed at its deadline (${deadline.why})`);
  }
  const st = await rt.store.state(name).catch(() => undefined);
  if (st?.initPid) await unlockCriuNetwork(st.initPid).catch(() => false);
  await fs.rm(staging, { recursive: true, force: true });
}
