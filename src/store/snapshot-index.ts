import { createHash } from 'node:crypto';
import { isCheckpointId } from '../checkpoint/manifest.js';
import { TsmError } from '../errors/errors.js';
import { isValidName } from '../util/name.js';

/**
 * The store's index (as restic and borg keep one): every snapshot the store
 * holds, with the sha256 of its metadata object, under a number that grows by
 * one with every change. It is an object like any other (object.ts): in an
 * encrypted store sealed with the store's key (the GCM tag is its keyed MAC,
 * bound to the store id), so the store host can neither forge one nor edit
 * one; it can only withhold a file or replay an older index. Both are caught:
 * a snapshot the index lists whose metadata is gone is an error naming it, and
 * every host remembers the highest number it has seen (IndexSeen), so an
 * older index is refused as a rollback.
 *
 * An unencrypted store has no secret: its index is signed by the host that
 * wrote it (Ed25519, purpose "store-index", a trailer as snapshots carry) and
 * checked against the trusted keys when read (chunk-store.ts), so a store
 * host can replay an old one (caught by the number) but not write a new one.
 */
export const INDEX_FORMAT = 'tsmigrate-index/1';
const MAX_ENTRIES = 100_000;

export interface IndexEntry {
  id: string;
  /** the name of its files in the store (snapshotName) */
  name: string;
  container: string;
  createdAt: string;
  /** sha256 (hex) of the metadata object as stored */
  meta: string;
}

export interface StoreIndex {
  format: typeof INDEX_FORMAT;
  /** the store's id (store.json): an index cannot be moved between stores */
  store: string;
  seq: number;
  snapshots: IndexEntry[];
}

/** This host's record of the highest index number seen per store (the state root keeps it). */
export interface IndexSeen {
  get(storeId: string): Promise<number | null>;
  /** record `seq` if higher than what is recorded */
  raise(storeId: string, seq: number): Promise<void>;
}

export function indexAad(storeId: string): Buffer {
  return Buffer.from(`index:${storeId}`);
}

export function metaDigest(obj: Buffer): string {
  return createHash('sha256').update(obj).digest('hex');
}

export function emptyIndex(storeId: string): StoreIndex {
  return { format: INDEX_FORMAT, store: storeId, seq: 0, snapshots: [] };
}

export function encodeIndex(i: StoreIndex): Buffer {
  return Buffer.from(JSON.stringify(i));
}

const bad = (location: string, what: string) =>
  new TsmError('EINTEGRITY', `the index of store ${location} is invalid: ${what}`, { fix: 'nothing was changed; the store host altered or damaged it: use another store, or restore the index from a backup' });

const HEX64 = /^[0-9a-f]{64}$/;
const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const NAME = /^[a-z0-9][a-z0-9_.-]{0,127}$/;
const isStr = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

/** Parse an index's (authenticated) plaintext strictly: unknown fields refused, every field bounded. */
export function parseIndex(plain: Buffer, storeId: string, location: string): StoreIndex {
  let v: unknown;
  try {
    v = JSON.parse(plain.toString('utf8'));
  } catch {
    throw bad(location, 'not JSON');
  }
  const o = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(location, 'not an object');
  const keys = Object.keys(o).sort().join(',');
  if (keys !== 'format,seq,snapshots,store') throw bad(location, `fields ${keys.slice(0, 80)}`);
  if (o['format'] !== INDEX_FORMAT) throw bad(location, `format ${JSON.stringify(o['format']).slice(0, 40)}`);
  if (o['store'] !== storeId) throw bad(location, 'it belongs to another store');
  const seq = o['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw bad(location, 'seq');
  const list = o['snapshots'];
  if (!Array.isArray(list) || list.length > MAX_ENTRIES) throw bad(location, 'snapshots');
  const ids = new Set<string>();
  const names = new Set<string>();
  const snapshots = list.map((e: unknown, i): IndexEntry => {
    const x = e as Record<string, unknown>;
    if (typeof e !== 'object' || e === null || Object.keys(x).sort().join(',') !== 'container,createdAt,id,meta,name') throw bad(location, `entry ${i}`);
    const { id, name, container, createdAt, meta } = x;
    if (!isStr(id, 128) || !isCheckpointId(id) || ids.has(id)) throw bad(location, `entry ${i}: id`);
    if (!isStr(name, 128) || !NAME.test(name) || names.has(name)) throw bad(location, `entry ${i}: name`);
    if (typeof container !== 'string' || !isValidName(container) || !isStr(createdAt, 64) || !TIME.test(createdAt) || Number.isNaN(Date.parse(createdAt))) {
      throw bad(location, `entry ${i}: container or time`);
    }
    if (typeof meta !== 'string' || !HEX64.test(meta)) throw bad(location, `entry ${i}: meta`);
    ids.add(id);
    names.add(name);
    return { id, name, container, createdAt, meta };
  });
  return { format: INDEX_FORMAT, store: storeId, seq, snapshots };
}

/** Refuse an index older than one this host has seen (pure). */
export function checkNotRolledBack(idx: StoreIndex | null, seen: number | null, location: string): void {
  const seq = idx?.seq ?? 0;
  if (seen !== null && seq < seen) {
    throw new TsmError('EINTEGRITY', idx
      ? `the index of store ${location} is #${seq}, but this host has seen #${seen}: the store was rolled back, and checkpoints taken since are hidden`
      : `store ${location} has lost its index (this host has seen #${seen})`, {
      fix: 'nothing was changed; find out who rolled back the store host\'s files; restore from another store',
    });
  }
}

/** What the listing holds against the index (pure): indexed snapshots whose metadata is gone, and metadata the index does not list. */
export function auditListing(idx: StoreIndex, listed: readonly string[]): { missing: IndexEntry[]; strays: string[] } {
  const have = new Set(listed);
  const indexed = new Set(idx.snapshots.map((e) => e.name));
  return { missing: idx.snapshots.filter((e) => !have.has(e.name)), strays: listed.filter((n) => !indexed.has(n)) };
}

/** One line naming missing snapshots: "web-20261206t… (web, taken 2026-…)". */
export function describeMissing(missing: readonly IndexEntry[]): string {
  return missing.slice(0, 5).map((e) => `${e.id} (${e.container}, taken ${e.createdAt})`).join(', ') + (missing.length > 5 ? ` and ${missing.length - 5} more` : '');
}
