import { TsmError } from '../errors/errors.js';

/**
 * Where a store's objects live. The backend sees only encoded objects (see
 * object.ts): it never holds the key. LocalBackend is a directory on this
 * host; RemoteBackend is the same directory served by `tsmigrate agent` on
 * another host over SSH.
 *
 * Layout of a store directory:
 *   store.json                   format, store id, chunking, encryption (key check only)
 *   index                        the index object: every snapshot, numbered (see snapshot-index.ts)
 *   chunks/ab/abcd…              one object per chunk, named by its id (hex)
 *   snapshots/<name>.meta        the checkpoint's metadata object (encrypted with the store);
 *                                <name> is its id, or a keyed hash of it in an encrypted store
 *   snapshots/<name>.refs        the chunk ids it references (32 bytes each, sorted): lets the
 *                                store host collect garbage and verify without the key
 *   lock/                        held by a writer or a collector
 */
export const STORE_FORMAT = 'tsmigrate-store/2';
/** Formats this version refuses with a fix (their objects and names are not authenticated). */
export const OLD_STORE_FORMATS: readonly string[] = ['tsmigrate-store/1'];

/** A store.json read from disk: this version's format, or one clear refusal (an old format with its fix). */
export function checkStoreInfo(info: StoreInfo, location: string): StoreInfo {
  if (OLD_STORE_FORMATS.includes(info.format)) {
    throw new TsmError('ECONFIG', `${location} is a ${info.format} store: its objects and index are not authenticated, so this version does not read it`, {
      fix: `take new checkpoints into a new store (a ${STORE_FORMAT} one); restore the old ones with the tsmigrate version that wrote them, then remove the old store`,
    });
  }
  if (info.format !== STORE_FORMAT || typeof info.id !== 'string' || !/^[0-9a-f]{32}$/.test(info.id)) {
    throw new TsmError('ECONFIG', `${location} is not a tsmigrate store (format ${JSON.stringify(info.format)})`, { fix: `use a store made by this version (${STORE_FORMAT})` });
  }
  return info;
}

export type ChunkingAlgorithm = 'fastcdc-gear32' | 'fastcdc-gear32-keyed';

export interface StoreInfo {
  format: typeof STORE_FORMAT;
  /** random, 32 hex digits: names the store in the index and in this host's record of the index seen */
  id: string;
  createdAt: string;
  chunking: { algorithm: ChunkingAlgorithm; min: number; avg: number; max: number };
  encryption: { algorithm: 'aes-256-gcm'; keyCheck: string } | null;
}

export interface VerifyReport {
  chunks: number;
  bytes: number;
  bad: Array<{ id: string; problem: string }>;
  missing: string[];
}

export interface StoreBackend {
  /** for messages: "/var/lib/tsmigrate/store" or "host-c:/srv/tsm" */
  readonly location: string;
  /** the store's info; with `create`, creates the store first when it does not exist */
  open(create: StoreInfo | null): Promise<StoreInfo | null>;
  /** exclusive: writers and the collector take it; a dead holder's lock is taken over */
  lock(wait: { timeoutMs: number }): Promise<void>;
  unlock(): Promise<void>;
  has(ids: string[]): Promise<boolean[]>;
  /** store objects (id hex → encoded object); returns bytes written (objects already present are skipped) */
  putChunks(objects: Array<{ id: string; obj: Buffer }>): Promise<{ written: number; bytes: number }>;
  /** read objects in order; the store host checks each object's checksum first */
  getChunks(ids: string[]): Promise<Buffer[]>;
  listSnapshots(): Promise<string[]>;
  getSnapshot(id: string): Promise<Buffer>;
  /** the commit point of a checkpoint: refs first, then meta, durable when it returns */
  putSnapshot(id: string, meta: Buffer, refs: Buffer): Promise<void>;
  deleteSnapshot(id: string): Promise<void>;
  /** the index object, or null when the store has none yet */
  getIndex(): Promise<Buffer | null>;
  /** replace the index object (durable when it returns); call with the lock held */
  putIndex(obj: Buffer): Promise<void>;
  /** check objects on the store host (checksums): all chunks, or those one snapshot references */
  verify(snapshot: string | null): Promise<VerifyReport>;
  /** remove chunks no snapshot references; call with the lock held */
  collect(): Promise<{ chunks: number; bytes: number }>;
  stats(): Promise<{ chunks: number; bytes: number; snapshots: number }>;
  close(): Promise<void>;
}
