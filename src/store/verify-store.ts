import { TsmError } from '../errors/errors.js';
import type { ChunkStore } from './chunk-store.js';
import { idsOf } from './local-backend.js';
import type { Snapshot } from './snapshot.js';

export interface StoreVerifyResult {
  checkpoints: number;
  chunks: number;
  bytes: number;
  problems: string[];
}

/**
 * `store verify`: the index (authenticated, not rolled back), every listed
 * checkpoint's metadata (the one indexed), and every chunk they need read back
 * and authenticated on this host with the key, never on the store host's word.
 * A whole-store verify also reports damaged or missing chunks the store host
 * finds among those no checkpoint needs.
 */
export async function verifyStore(store: ChunkStore, only: string | null): Promise<StoreVerifyResult> {
  const listing = await store.list();
  const problems: string[] = [];
  const snaps: Snapshot[] = [];
  const chosen = only ? listing.snapshots.filter((s) => s.id === only) : listing.snapshots;
  if (only && !chosen.length) {
    const why = listing.bad.find((b) => b.id === only)?.problem ?? (listing.missing.some((m) => m.id === only) ? `checkpoint ${only} is in the store's index, but its metadata is gone` : undefined);
    if (!why) throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${only}" in ${store.location}`, { fix: 'list them with tsmigrate store ls' });
    problems.push(why);
  }
  if (!only) {
    problems.push(...listing.missing.map((m) => `checkpoint ${m.id} (${m.container}, taken ${m.createdAt}) is in the store's index, but its metadata is gone`));
    problems.push(...listing.bad.map((b) => b.problem));
  }
  for (const m of chosen) {
    try {
      snaps.push(await store.load(m.id));
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const r = await store.verifyChunks(snaps);
  problems.push(...r.problems);
  if (!only) {
    const needed = new Set(snaps.flatMap((s) => [...idsOf(s.ids.criu), ...idsOf(s.ids.upper)]));
    const host = await store.backend.verify(null);
    for (const b of host.bad) if (!needed.has(b.id)) problems.push(`chunk ${b.id.slice(0, 12)}… (no checkpoint needs it) is corrupted: ${b.problem}`);
  }
  return { checkpoints: chosen.length, chunks: r.chunks, bytes: r.bytes, problems };
}
