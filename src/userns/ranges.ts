/**
 * Subordinate id ranges for --userns auto: each container's root is host id
 * START, its ids START..START+SIZE-1. Ranges are handed out from a pool (a
 * `tsmigrate:START:COUNT` line in /etc/subuid, else the upper half of the
 * 32-bit id space), one file per range under <root>/userns, never overlapping.
 * A container keeps its range when checkpointed, moved or restored elsewhere:
 * its files and CRIU's images carry those host ids, so the other host reserves
 * the same range and refuses when another container holds it.
 */
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

export interface IdRange {
  readonly start: number;
  readonly size: number;
}

export const RANGE_SIZE = 65536;
export const DEFAULT_POOL: IdRange = { start: 2 ** 31, size: 2 ** 31 - RANGE_SIZE };

/** Pure: the pool a /etc/subuid text gives tsmigrate, or the default. */
export function poolFromSubuid(text: string | undefined): IdRange {
  for (const line of (text ?? '').split('\n')) {
    const m = /^tsmigrate:(\d+):(\d+)$/.exec(line.trim());
    if (m) {
      const start = Number(m[1]);
      const size = Number(m[2]);
      if (start > 0 && size >= RANGE_SIZE && start + size <= 2 ** 32 - 1) return { start, size };
    }
  }
  return DEFAULT_POOL;
}

/** Pure: the lowest free aligned range of `size` ids in the pool, or undefined when full. */
export function pickRange(pool: IdRange, taken: readonly IdRange[], size = RANGE_SIZE): IdRange | undefined {
  const sorted = [...taken].sort((a, b) => a.start - b.start);
  let start = pool.start;
  while (start + size <= pool.start + pool.size) {
    const clash = sorted.find((t) => t.start < start + size && start < t.start + t.size);
    if (!clash) return { start, size };
    start = pool.start + Math.ceil((clash.start + clash.size - pool.start) / size) * size;
  }
  return undefined;
}

const FILE = /^(\d+)-(\d+)\.json$/;

function dirOf(root: string): string {
  return path.join(root, 'userns');
}

async function leases(root: string): Promise<Array<IdRange & { container: string }>> {
  const names = await fs.readdir(dirOf(root)).catch(() => [] as string[]);
  const out: Array<IdRange & { container: string }> = [];
  for (const n of names) {
    const m = FILE.exec(n);
    if (!m) continue;
    const owner = await fs.readFile(path.join(dirOf(root), n), 'utf8').then((t) => (JSON.parse(t) as { container?: string }).container, () => undefined);
    out.push({ start: Number(m[1]), size: Number(m[2]), container: owner ?? '?' });
  }
  return out;
}

async function claim(root: string, r: IdRange, container: string): Promise<boolean> {
  await fs.mkdir(dirOf(root), { recursive: true, mode: 0o700 });
  try {
    await fs.writeFile(path.join(dirOf(root), `${r.start}-${r.size}.json`), JSON.stringify({ container }), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Allocate a fresh range for a container. */
export async function allocateRange(root: string, container: string, pool: IdRange = poolFromSubuid(readOpt('/etc/subuid'))): Promise<IdRange> {
  for (let attempt = 0; attempt < 16; attempt++) {
    const r = pickRange(pool, await leases(root));
    if (!r) throw new TsmError('EBUSY', `no free user namespace range of ${RANGE_SIZE} ids left in ${pool.start}..${pool.start + pool.size - 1}`, { fix: 'remove containers, or give tsmigrate a larger range with a tsmigrate:START:COUNT line in /etc/subuid' });
    if (await claim(root, r, container)) return r;
  }
  throw new TsmError('EBUSY', 'could not claim a user namespace range (too much contention)', { fix: 'try again' });
}

/** Reserve exactly `r` for a container (restore, the peer of a move); refuses when any other container's range overlaps. */
export async function reserveRange(root: string, container: string, r: IdRange): Promise<void> {
  const clash = (await leases(root)).find((l) => l.start < r.start + r.size && r.start < l.start + l.size);
  if (clash && clash.container === container && clash.start === r.start && clash.size === r.size) return;
  if (clash || !(await claim(root, r, container))) {
    throw new TsmError('EBUSY', `the user namespace range ${r.start}+${r.size} of ${container} is held by container ${clash?.container ?? '?'} here`, {
      fix: `remove that container first (its files and CRIU's images use these host ids, so ${container} cannot move to another range)`,
    });
  }
}

/** The container holding any id of `r` here, if one does. */
export async function rangeHolder(root: string, r: IdRange): Promise<string | undefined> {
  return (await leases(root)).find((l) => l.start < r.start + r.size && r.start < l.start + l.size)?.container;
}

/** Give a container's range back; idempotent. */
export async function releaseRange(root: string, container: string): Promise<void> {
  for (const l of await leases(root)) {
    if (l.container === container) await fs.rm(path.join(dirOf(root), `${l.start}-${l.size}.json`), { force: true });
  }
}

/**
 * CRIU's restored tasks open some images (relative to the images directory)
 * from inside the new user namespace before its maps exist, when no host id is
 * theirs: the directory gets search and the files read for others. Its parent
 * stays root's 0700 (makeStagingDir), so no host user can reach them by path.
 */
export async function handImagesToNamespace(imagesDir: string): Promise<void> {
  const parent = await fs.stat(path.dirname(imagesDir));
  if (parent.uid !== 0 || (parent.mode & 0o077) !== 0) {
    throw new TsmError('EINTERNAL', `the images' parent ${path.dirname(imagesDir)} is not root's alone (mode ${(parent.mode & 0o777).toString(8)})`, { fix: 'report a tsmigrate bug' });
  }
  await fs.chmod(imagesDir, 0o711);
  const dir = await fs.opendir(imagesDir);
  for await (const e of dir) {
    if (e.isFile()) await fs.chmod(path.join(imagesDir, e.name), 0o604);
  }
}

/** Whether this kernel lets us make user namespaces at all. */
export function userNamespacesAvailable(): boolean {
  return Number(readOpt('/proc/sys/user/max_user_namespaces') ?? '0') > 0;
}

function readOpt(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
