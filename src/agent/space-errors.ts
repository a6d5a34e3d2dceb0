import { TsmError } from '../errors/errors.js';
import { filesystemReader } from './filesystems.js';
import { mibDown, type FilesystemFacts } from './peer-space.js';

/** Whether `e` (or an error it wraps) is a full filesystem or quota. */
export function isNoSpace(e: unknown): boolean {
  for (let x = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    const code = (x as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT' || /No space left on device|Disk quota exceeded/.test(x.message)) return true;
  }
  return false;
}

/** The path a failed write named, if any (Node's fs errors carry it). */
function failedPath(e: unknown): string | undefined {
  for (let x = e, depth = 0; x instanceof Error && depth < 8; x = x.cause, depth++) {
    const p = (x as NodeJS.ErrnoException).path;
    if (typeof p === 'string' && p.startsWith('/')) return p;
  }
  return undefined;
}

/**
 * The one error a move gets when the peer ran out of space after its
 * pre-flight said the move fit (the container grew, or another writer filled
 * the disk): which filesystem, what is free there now, and what to do. The
 * filesystem is the one the failed write named, else the fullest of `dirs`.
 */
export function noSpaceError(e: unknown, dirs: string[], fsOf: (dir: string) => FilesystemFacts = filesystemReader()): TsmError {
  const at = failedPath(e);
  const candidates = (at ? [at] : dirs.length ? dirs : ['/']).map((d) => fsOf(d));
  const full = candidates.reduce((a, b) => (b.freeBytes < a.freeBytes ? b : a));
  const what = full.tmpfs ? 'tmpfs' : 'filesystem';
  return new TsmError('ENOSPC', `no space left on the peer's ${what} at ${full.mountPoint} (${mibDown(full.freeBytes)} MiB free now): it filled up after the pre-flight counted the move's bytes`, {
    fix: `the move was rolled back and the container runs here; free space under ${full.mountPoint} on the peer (tsmigrate host check shows what the move needs there), then retry`,
    cause: e,
  });
}

/**
 * Wrap `methods` of `target` (an agent) so that running out of space becomes
 * noSpaceError over the directories `dirsOf` names for that call; other
 * errors pass through unchanged.
 */
export function guardSpace<T extends object>(target: T, methods: Array<keyof T & string>, dirsOf: (params: unknown) => Promise<string[]>): void {
  for (const name of methods) {
    const fn = target[name] as unknown as (...a: unknown[]) => Promise<unknown>;
    const guarded = async (...args: unknown[]) => {
      try {
        return await fn.apply(target, args);
      } catch (e) {
        if (!isNoSpace(e) || (e instanceof TsmError && e.code === 'ENOSPC')) throw e;
        throw noSpaceError(e, await dirsOf(args[0]).catch(() => []));
      }
    };
    Object.defineProperty(target, name, { value: guarded, writable: true, configurable: true });
  }
}
