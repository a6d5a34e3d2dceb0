import type { Runtime } from '../runtime/context.js';
import { openStore } from '../store/open.js';
import { pruneStore, type PruneResult } from '../store/prune.js';
import { checkpointToStore, type StoreCheckpointResult } from '../store/put-checkpoint.js';
import { verifyStore } from '../store/verify-store.js';
import { TsmError } from '../errors/errors.js';
import type { Schedule } from './schedules.js';

export interface ScheduledRun {
  checkpoint: StoreCheckpointResult;
  prune: PruneResult;
}

/** The tag scheduled checkpoints carry: which schedule took them. */
export function scheduleTag(s: Schedule): string {
  return `schedule:${s.container}`;
}

/**
 * One scheduled checkpoint: taken (frozen only for the dump), stored, verified
 * (the store's index, and every chunk of the new checkpoint read back and
 * authenticated with the key), and only then are old ones pruned by the
 * retention policy and their unreferenced chunks collected. A failed verify
 * prunes nothing.
 */
export async function runSchedule(rt: Runtime, s: Schedule, configFile: string): Promise<ScheduledRun> {
  const store = await openStore(rt, { spec: s.store ?? undefined, encryptKey: s.encryptKey ?? undefined, configFile, create: true });
  try {
    const checkpoint = await checkpointToStore(rt, store, {
      name: s.container, stop: false, tcpEstablished: s.tcpEstablished, fileLocks: false, schedule: scheduleTag(s),
    });
    // read back and authenticated here, with the key: the store host's own check proves nothing
    const { problems } = await verifyStore(store, checkpoint.meta.id);
    if (problems.length) {
      throw new TsmError('EINTEGRITY', `checkpoint ${checkpoint.meta.id} did not verify in ${store.location}: ${problems.slice(0, 3).join('; ')}`, {
        fix: 'nothing was pruned; check the store host\'s disk (tsmigrate store verify)',
      });
    }
    const prune = await pruneStore(store, { container: s.container, schedule: scheduleTag(s), policy: s.keep });
    return { checkpoint, prune };
  } finally {
    await store.backend.close().catch(() => undefined);
  }
}

/** When a schedule last ran: its newest checkpoint in its store (null: never). The store is the record, so a restarted daemon neither repeats nor skips a run. */
export async function lastRunOf(rt: Runtime, s: Schedule, configFile: string): Promise<Date | null> {
  const store = await openStore(rt, { spec: s.store ?? undefined, encryptKey: s.encryptKey ?? undefined, configFile, create: false }).catch((e: unknown) => {
    if (e instanceof TsmError && e.code === 'ENOENT_CHECKPOINT') return null;
    throw e;
  });
  if (!store) return null;
  try {
    const { snapshots } = await store.list(s.container);
    const mine = snapshots.filter((x) => x.schedule === scheduleTag(s));
    const last = mine[mine.length - 1];
    return last ? new Date(last.createdAt) : null;
  } finally {
    await store.backend.close().catch(() => undefined);
  }
}
