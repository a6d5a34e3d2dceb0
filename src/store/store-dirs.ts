import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { StoreDirOpener } from './local-backend.js';
import { ConfinedDir } from '../util/confined-dir.js';

/**
 * Where this host's agent keeps stores for its clients: the directories the
 * host's config (`agent.storeDirs`) or the agent's own argv (`--store-dir`)
 * names, or, when nothing is configured, any absolute path but the system's
 * (then still resolved from / without following a link).
 */
export type StoreRoots = readonly string[] | 'any';

const FORBIDDEN = ['/proc', '/sys', '/dev', '/run/tsmigrate'];

/** A store path a peer may ask for: absolute, normalised, not a system directory (pure). */
export function checkStorePath(p: string): string {
  const n = path.normalize(p).replace(/\/+$/, '');
  if (!path.isAbsolute(p) || n !== p.replace(/\/+$/, '') || n === '' || n === '/' || FORBIDDEN.some((f) => n === f || n.startsWith(`${f}/`))) {
    throw new TsmError('EINVAL_ARG', `store path "${p.slice(0, 200)}" is not allowed`, { fix: 'give an absolute, normalised directory such as /srv/tsmigrate-store (not /, /proc, /sys or /dev)' });
  }
  return n;
}

/** Configured store directories: absolute and normalised, each once (pure; throws ECONFIG naming `where`). */
export function checkStoreRoots(dirs: readonly string[], where: string): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    const n = path.normalize(d).replace(/(.)\/+$/, '$1');
    if (!path.isAbsolute(d) || d.includes('\0') || n === '/' || FORBIDDEN.some((f) => n === f || n.startsWith(`${f}/`))) {
      throw new TsmError('ECONFIG', `${where}: store directory "${d.slice(0, 200)}" is not allowed`, { fix: 'give absolute directories such as /srv/tsmigrate-stores (not /, /proc, /sys or /dev)' });
    }
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/**
 * Which configured directory a store path from the wire lies in, and the path
 * beneath it (pure). A path outside every one is refused: nothing is touched.
 */
export function placeStore(p: string, roots: StoreRoots): { root: string; rel: string; dir: string } {
  const dir = checkStorePath(p);
  if (roots === 'any') return { root: '/', rel: dir.slice(1), dir };
  const inside = roots.filter((r) => dir === r || dir.startsWith(`${r}/`)).sort((a, b) => b.length - a.length);
  const root = inside[0];
  if (root === undefined) {
    throw new TsmError('EFORBIDDEN', `store path ${dir} is outside this host's store directories (${roots.join(', ') || 'none configured'})`, {
      fix: roots.length ? `use a store beneath ${roots.join(' or ')}, or add its directory to agent.storeDirs (or --store-dir) on that host` : 'configure agent.storeDirs (or --store-dir) on that host; see docs/ROLES.md',
    });
  }
  return { root, rel: path.relative(root, dir), dir };
}

/**
 * Opens a placed store beneath its root: every component below the root opened
 * without following links (a link anywhere on the way is refused), created 0700
 * when `create`. The root itself is the host's own configuration and is trusted.
 */
export function openerBeneath(place: { root: string; rel: string }): StoreDirOpener {
  return async (create) => {
    try {
      return await ConfinedDir.beneath(place.root, place.rel, { create, mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !create) return undefined;
      throw e;
    }
  };
}
