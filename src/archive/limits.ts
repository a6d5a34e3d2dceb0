/**
 * How much an archive or a compressed stream from an untrusted place may
 * expand into, checked while it streams and before anything is written for an
 * entry: file content bytes, entry count, path depth, one entry's declared
 * size, and for compressed streams the decompressed bytes and the ratio of
 * decompressed to compressed bytes. Pure: the checks return the reason a
 * limit is crossed, or null; the extractor and the inflater turn it into an
 * error.
 */
import { TsmError } from '../errors/errors.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface TarLimits {
  /** file content bytes (data of regular files) over all entries */
  maxBytes: number;
  /** entries of any type, the root included */
  maxEntries: number;
  /** path components of a name ("a/b/c" is 3) */
  maxDepth: number;
  /** content bytes one entry may declare */
  maxEntryBytes: number;
}

export interface InflateLimits {
  /** decompressed bytes of the whole stream */
  maxBytes: number;
  /** past `ratioSlack` decompressed bytes, at most this many per compressed byte */
  maxRatio: number;
  /** decompressed bytes always allowed, whatever the ratio (a declared size, or a default) */
  ratioSlack: number;
}

export interface Limits {
  tar: TarLimits;
  inflate: InflateLimits;
}

/** What each kind of archive tsmigrate reads may expand into (see the presets' comments). */
export type ArchiveKind = 'checkpoint-archive' | 'criu-images' | 'upper' | 'rootfs';

const CAP = 64 * GiB;
/** Zero-filled memory or files compress about 30000:1 with zstd, so below the slack no ratio is asked. */
const SLACK = 1 * GiB;

export const PRESETS: Readonly<Record<ArchiveKind, Limits>> = Object.freeze({
  /** an exported checkpoint: the root and five files at the top (manifest, its signature, two blobs, the log), already-compressed blobs and a text log */
  'checkpoint-archive': {
    tar: { maxBytes: CAP, maxEntries: 6, maxDepth: 1, maxEntryBytes: CAP },
    inflate: { maxBytes: CAP, maxRatio: 64, ratioSlack: 64 * MiB },
  },
  /** CRIU's images directory (flat) */
  'criu-images': {
    tar: { maxBytes: CAP, maxEntries: 100_000, maxDepth: 4, maxEntryBytes: CAP },
    inflate: { maxBytes: CAP, maxRatio: 1024, ratioSlack: SLACK },
  },
  /** a container's upper layer */
  upper: {
    tar: { maxBytes: CAP, maxEntries: 500_000, maxDepth: 256, maxEntryBytes: CAP },
    inflate: { maxBytes: CAP, maxRatio: 1024, ratioSlack: SLACK },
  },
  /** an image's root filesystem */
  rootfs: {
    tar: { maxBytes: CAP, maxEntries: 500_000, maxDepth: 256, maxEntryBytes: CAP },
    inflate: { maxBytes: CAP, maxRatio: 1024, ratioSlack: SLACK },
  },
});

/** The preset for `kind`, with a declared decompressed size (from a manifest) as the bound where there is one. */
export function limitsFor(kind: ArchiveKind, declared?: { tarBytes?: number; entries?: number }): Limits {
  const p = PRESETS[kind];
  const tar = { ...p.tar };
  const inflate = { ...p.inflate };
  if (declared?.tarBytes !== undefined) {
    // the declared size is the bound, and up to it no ratio is asked (zero pages compress without limit)
    inflate.maxBytes = Math.min(inflate.maxBytes, declared.tarBytes);
    inflate.ratioSlack = Math.max(inflate.ratioSlack, declared.tarBytes);
    tar.maxBytes = Math.min(tar.maxBytes, declared.tarBytes);
  }
  if (declared?.entries !== undefined) tar.maxEntries = Math.min(tar.maxEntries, declared.entries);
  return { tar, inflate };
}

/**
 * What one stream of a move may expand to, from the size its source declared
 * (the upper layer's or the memory's): twice that (the layer changes while it
 * is copied, a delta sends changed files again) and a margin. Undeclared: a
 * small bound (both sides run the same version, so only a client that is not
 * tsmigrate leaves it out).
 */
export function streamBound(declared: number | undefined): number {
  return declared === undefined ? UNDECLARED : 2 * declared + 64 * MiB;
}

const UNDECLARED = 64 * MiB;

/** What a manifest's blob declares (`entries` when the manifest has it) as limitsFor takes it. */
export function declaredOf(blob: { entries?: number; tarBytes?: number }): { entries?: number; tarBytes?: number } {
  const ok = (n: number | undefined): n is number => Number.isSafeInteger(n) && n! >= 0;
  return { ...(ok(blob.entries) ? { entries: blob.entries } : {}), ...(ok(blob.tarBytes) ? { tarBytes: blob.tarBytes } : {}) };
}

/** Running totals of a tar extraction. */
export interface TarSeen {
  entries: number;
  bytes: number;
}

/** Why the next entry (`depth` components, declaring `size` content bytes) crosses a limit, or null. */
export function tarEntryProblem(l: TarLimits, seen: TarSeen, e: { depth: number; size: number }): string | null {
  if (seen.entries + 1 > l.maxEntries) return `has more than ${l.maxEntries} entries`;
  if (e.depth > l.maxDepth) return `has a path ${e.depth} directories deep (at most ${l.maxDepth})`;
  if (e.size > l.maxEntryBytes) return `has an entry of ${e.size} bytes (at most ${l.maxEntryBytes})`;
  if (seen.bytes + e.size > l.maxBytes) return `expands to more than ${l.maxBytes} bytes`;
  return null;
}

/** Why `out` decompressed bytes from `in` compressed bytes cross a limit, or null. */
export function inflateProblem(l: InflateLimits, inBytes: number, outBytes: number): string | null {
  if (outBytes > l.maxBytes) return `expands to more than ${l.maxBytes} bytes`;
  if (outBytes > l.ratioSlack && outBytes > inBytes * l.maxRatio) {
    return `expands more than ${l.maxRatio} times (${inBytes} compressed bytes gave ${outBytes})`;
  }
  return null;
}

/** The one-line error for a crossed limit; `what` names the archive or stream. */
export function limitError(what: string, why: string): TsmError {
  return new TsmError('EINVAL_ARG', `refused ${what}: it ${why}`, {
    fix: 'nothing was kept; do not use it (it may be a decompression bomb), or recreate it from a trusted source',
  });
}
