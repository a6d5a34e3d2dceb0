import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { IndexSeen } from './snapshot-index.js';

const STORE_ID = /^[0-9a-f]{32}$/;
const SEQ = /^(0|[1-9][0-9]{0,15})$/;

/**
 * The highest index number this host has seen per store: under
 * `<root>/store-index/<store id>/`, one empty file named by each number
 * recorded, the highest counting. Raising adds a file and then removes the
 * lower ones, so two processes raising at once can never lower it (no lock,
 * no read-modify-write). A store whose index is older was rolled back.
 */
export function indexSeenIn(root: string): IndexSeen {
  const dirOf = (storeId: string) => {
    if (!STORE_ID.test(storeId)) throw new TsmError('EINTERNAL', `invalid store id "${storeId.slice(0, 40)}"`, { fix: 'report a tsmigrate bug' });
    return path.join(root, 'store-index', storeId);
  };
  const numbers = async (dir: string): Promise<number[]> => {
    const names = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [] as string[];
      throw e;
    });
    return names.filter((n) => SEQ.test(n)).map(Number).filter(Number.isSafeInteger);
  };
  const get = async (storeId: string): Promise<number | null> => {
    const seen = await numbers(dirOf(storeId));
    return seen.length ? Math.max(...seen) : null;
  };
  return {
    get,
    async raise(storeId, seq) {
      const dir = dirOf(storeId);
      const have = await numbers(dir);
      if (have.some((n) => n >= seq)) return;
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      await fs.writeFile(path.join(dir, String(seq)), '', { mode: 0o600 });
      for (const n of have) await fs.rm(path.join(dir, String(n)), { force: true });
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
