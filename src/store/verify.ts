import type { StoreBackend } from './backend.js';
import { MAX_GET_PER_CALL } from './api.js';
import { idsOf } from './local-backend.js';
import type { Snapshot } from './snapshot.js';

export interface ChunkVerifyReport {
  /** distinct chunks read back and authenticated */
  chunks: number;
  /** their plaintext bytes */
  bytes: number;
  /** one line per bad chunk, naming it and a checkpoint that needs it */
  problems: string[];
}

/** Authenticates one object (throws naming `what`); returns its plaintext length. */
export type ObjectCheck = (obj: Buffer, id: Buffer, what: string) => number;

/**
 * Read back every chunk the snapshots need (the ids come from their
 * authenticated metadata, never from the store host's refs) and check each on
 * this side, with the key. A batch the store host refuses (a missing or
 * damaged object) is asked for again one chunk at a time, so that each
 * problem names its chunk.
 */
export async function verifyChunks(backend: StoreBackend, snaps: readonly Snapshot[], check: ObjectCheck): Promise<ChunkVerifyReport> {
  const owner = new Map<string, string>();
  for (const s of snaps) for (const id of [...idsOf(s.ids.criu), ...idsOf(s.ids.upper)]) if (!owner.has(id)) owner.set(id, s.meta.id);
  const all = [...owner.keys()];
  const report: ChunkVerifyReport = { chunks: 0, bytes: 0, problems: [] };
  const what = (id: string) => `chunk ${id.slice(0, 12)}… of checkpoint ${owner.get(id)}`;
  const one = (id: string, obj: Buffer) => {
    try {
      report.bytes += check(obj, Buffer.from(id, 'hex'), what(id));
      report.chunks++;
    } catch (e) {
      report.problems.push((e as Error).message);
    }
  };
  for (let i = 0; i < all.length; i += MAX_GET_PER_CALL) {
    const part = all.slice(i, i + MAX_GET_PER_CALL);
    const objs = await backend.getChunks(part).catch(() => null);
    if (objs) {
      part.forEach((id, j) => one(id, objs[j]!));
      continue;
    }
    for (const id of part) {
      const got = await backend.getChunks([id]).then((o) => o[0]!, (e: Error) => e);
      // the host's own words ("chunk ab12… is missing from …", "… in … is corrupted: …"), naming the checkpoint too
      if (got instanceof Error) report.problems.push(`${what(id)} ${got.message.split('\n')[0]!.replace(/^chunk [0-9a-f]{12}… /, '')}`);
      else one(id, got);
    }
  }
  return report;
}
