import path from 'node:path';

/**
 * The disk (and tmpfs) space a move takes on the peer, counted before anything
 * is frozen: every byte the peer will hold, against the filesystem it will
 * really be written to, summed where several go to one filesystem.
 *
 * The margin: each filesystem must keep MARGIN_FIXED plus MARGIN_FRACTION of
 * what the move puts there free on top of the estimate. The estimate leaves
 * out the migration's records, CRIU's logs, the overlay's and the filesystem's
 * own metadata and the growth of the container between the check and the
 * freeze; and a filesystem run to its last block fails the host's other
 * writers too.
 */
export const MARGIN_FIXED = 64 << 20;
export const MARGIN_FRACTION = 0.1;

const MiB = 1 << 20;

/** What the peer will write, and into which directory. */
export interface SpaceNeed {
  what: 'memory images' | 'upper layer' | 'logs' | 'image';
  bytes: number;
  dir: string;
}

/** The filesystem a directory is on (or would be: its nearest existing ancestor's). */
export interface FilesystemFacts {
  /** equal for directories on one filesystem (st_dev) */
  id: string;
  mountPoint: string;
  tmpfs: boolean;
  freeBytes: number;
}

/** One filesystem's share of the move. */
export interface SpaceUse {
  mountPoint: string;
  tmpfs: boolean;
  items: Array<{ what: SpaceNeed['what']; bytes: number }>;
  marginBytes: number;
  /** items and margin */
  needBytes: number;
  freeBytes: number;
  fits: boolean;
}

/** What the peer will hold for a move, from the source's figures and the peer's directories. */
export function peerSpaceNeeds(
  f: { memoryBytes: number; upperBytes: number; logBytes: number; imageBytes: number; needImage: boolean },
  dirs: { staging: string; containers: string; images: string },
): SpaceNeed[] {
  const needs: SpaceNeed[] = [
    // CRIU's images are about the memory the cgroup charges (page cache included: an estimate from above)
    { what: 'memory images', bytes: f.memoryBytes, dir: dirs.staging },
    { what: 'upper layer', bytes: f.upperBytes, dir: dirs.containers },
    { what: 'logs', bytes: f.logBytes, dir: dirs.containers },
  ];
  // the image arrives as a tar that stays until its unpacked copy is complete
  if (f.needImage) needs.push({ what: 'image', bytes: 2 * f.imageBytes, dir: dirs.images });
  return needs;
}

/** The needs grouped by filesystem, each with its margin, in the order first needed. */
export function planSpace(needs: SpaceNeed[], fsOf: (dir: string) => FilesystemFacts): SpaceUse[] {
  const byFs = new Map<string, { fs: FilesystemFacts; items: SpaceUse['items'] }>();
  for (const n of needs) {
    const fs = fsOf(path.resolve(n.dir));
    const g = byFs.get(fs.id) ?? { fs, items: [] };
    byFs.set(fs.id, g);
    const same = g.items.find((i) => i.what === n.what);
    if (same) same.bytes += n.bytes;
    else g.items.push({ what: n.what, bytes: n.bytes });
  }
  return [...byFs.values()].map(({ fs, items }) => {
    const sum = items.reduce((a, i) => a + i.bytes, 0);
    const marginBytes = MARGIN_FIXED + Math.ceil(sum * MARGIN_FRACTION);
    const needBytes = sum + marginBytes;
    return { mountPoint: fs.mountPoint, tmpfs: fs.tmpfs, items, marginBytes, needBytes, freeBytes: fs.freeBytes, fits: needBytes <= fs.freeBytes };
  });
}

/** MiB for messages: what is needed rounded up, what is free rounded down, so a refusal never reads "needs 5, has 5". */
export const mibUp = (b: number) => Math.ceil(b / MiB);
export const mibDown = (b: number) => Math.floor(b / MiB);

/** The refusal for a filesystem the move does not fit on: what is needed, what is free, and the fix. */
export function spaceProblem(u: SpaceUse): { check: string; message: string; fix: string } {
  const parts = [...u.items.filter((i) => i.bytes > 0).map((i) => `${i.what} ${mibUp(i.bytes)} MiB`), `margin ${mibUp(u.marginBytes)} MiB`].join(', ');
  const short = mibUp(u.needBytes - u.freeBytes);
  const staging = u.items.some((i) => i.what === 'memory images')
    ? ", or set the peer's TSMIGRATE_STAGING to a directory on a filesystem with room for the memory images"
    : '';
  return {
    check: 'disk',
    message: `the peer's ${u.tmpfs ? 'tmpfs' : 'filesystem'} at ${u.mountPoint} has ${mibDown(u.freeBytes)} MiB free, the move needs ${mibUp(u.needBytes)} MiB there (${parts})`,
    fix: `free at least ${short} MiB under ${u.mountPoint} on the peer${staging}, or move the container to another host`,
  };
}

/** One line per filesystem for `host check` and the move's log. */
export function spaceLine(u: SpaceUse): string {
  const parts = u.items.map((i) => `${i.what} ${mibUp(i.bytes)}`).join(' + ');
  return `${u.mountPoint}${u.tmpfs ? ' (tmpfs)' : ''}: needs ${mibUp(u.needBytes)} MiB (${parts} + margin ${mibUp(u.marginBytes)}), ${mibDown(u.freeBytes)} MiB free${u.fits ? '' : ': DOES NOT FIT'}`;
}
