import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import type { IndexSeen } from './snapshot-index.js';

const STORE_ID = /^[0-9a-f]{32}$/;

/**
 * The highest index number this host has seen per store, one file per store
 * id under `<root>/store-index/`. It only ever grows: a store whose index is
 * older than this was rolled back by its host.
 */
export function indexSeenIn(root: string): IndexSeen {
  const dir = path.join(root, 'store-index');
  const file = (storeId: string) => {
    if (!STORE_ID.test(storeId)) throw new TsmError('EINTERNAL', `invalid store id "${storeId.slice(0, 40)}"`, { fix: 'report a tsmigrate bug' });
    return path.join(dir, `${storeId}.json`);
  };
  const get = async (storeId: string): Promise<number | null> => {
    const v = await readJsonIfExists<{ seq?: unknown }>(file(storeId));
    return typeof v?.seq === 'number' && Number.isSafeInteger(v.seq) ? v.seq : null;
  };
  return {
    get,
    async raise(storeId, seq) {
      const have = await get(storeId);
      if (have !== null && have >= seq) return;
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await writeJsonAtomic(file(storeId), { seq }, 0o600);
    },
  };
}

/** In memory, for tests and one-off tools. */
export function indexSeenInMemory(): IndexSeen & { map: Map<string, number> } {
  const map = new Map<string, number>();
  return {
    map,
    get: async (id) => map.get(id) ?? null,
    raise: async (id, seq) => void map.set(id, Math.max(seq, map.get(id) ?? seq)),
  };
}
