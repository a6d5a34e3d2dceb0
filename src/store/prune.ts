import { TsmError } from '../errors/errors.js';
import { planRetention, type RetentionPolicy } from '../schedule/retention.js';
import type { ChunkStore } from './chunk-store.js';
import { STORE_LOCK_WAIT_MS } from './put-checkpoint.js';
import { describeMissing } from './snapshot-index.js';

export interface PruneResult {
  kept: string[];
  pruned: string[];
  collected: { chunks: number; bytes: number };
}

/**
 * Apply a retention policy to one container's checkpoints (only those a given
 * schedule took, when one is named), then collect the chunks nothing references.
 * Call only after the newest checkpoint is stored and verified.
 */
export async function pruneStore(store: ChunkStore, o: { container: string; schedule: string | null; policy: RetentionPolicy; dryRun?: boolean }): Promise<PruneResult> {
  const { snapshots, missing } = await store.list(o.container);
  if (missing.length) {
    // the store host deleted what the index lists: pruning now could leave nothing good
    throw new TsmError('EINTEGRITY', `store ${store.location} lost checkpoints its index lists: ${describeMissing(missing)}`, {
      fix: 'nothing was pruned; find out what removed them on the store host (tsmigrate store verify)',
    });
  }
  const mine = snapshots.filter((s) => o.schedule === null || s.schedule === o.schedule);
  const plan = planRetention(mine.map((s) => ({ id: s.id, createdAt: s.createdAt })), o.policy);
  if (o.dryRun) return { kept: plan.keep.map((k) => k.id), pruned: plan.prune, collected: { chunks: 0, bytes: 0 } };
  await store.backend.lock({ timeoutMs: STORE_LOCK_WAIT_MS });
  try {
    await store.removeSnapshots(plan.prune);
    const collected = plan.prune.length ? await store.backend.collect() : { chunks: 0, bytes: 0 };
    return { kept: plan.keep.map((k) => k.id), pruned: plan.prune, collected };
  } finally {
    await store.backend.unlock();
  }
}

/** Collect unreferenced chunks (after checkpoints were removed by hand). */
export async function collectGarbage(store: ChunkStore): Promise<{ chunks: number; bytes: number }> {
  await store.backend.lock({ timeoutMs: STORE_LOCK_WAIT_MS });
  try {
    return await store.backend.collect();
  } finally {
    await store.backend.unlock();
  }
}
