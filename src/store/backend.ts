/**
 * Where a store's objects live. The backend sees only encoded objects (see
 * object.ts): it never holds the key. LocalBackend is a directory on this
 * host; RemoteBackend is the same directory served by `tsmigrate agent` on
 * another host over SSH.
 *
 * Layout of a store directory:
 *   store.json                   format, chunking, encryption (key check only)
 *   chunks/ab/abcd…              one object per chunk, named by its id (hex)
 *   snapshots/<id>.meta          the checkpoint's metadata object (encrypted with the store)
 *   snapshots/<id>.refs          the chunk ids it references (32 bytes each, sorted): lets the
 *                                store host collect garbage and verify without the key
 *   lock/                        held by a writer or a collector
 */
export const STORE_FORMAT = 'tsmigrate-store/1';

export interface StoreInfo {
  format: typeof STORE_FORMAT;
  createdAt: string;
  chunking: { algorithm: 'fastcdc-gear32'; min: number; avg: number; max: number };
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
  /** check objects on the store host (checksums): all chunks, or those one snapshot references */
  verify(snapshot: string | null): Promise<VerifyReport>;
  /** remove chunks no snapshot references; call with the lock held */
  collect(): Promise<{ chunks: number; bytes: number }>;
  stats(): Promise<{ chunks: number; bytes: number; snapshots: number }>;
  close(): Promise<void>;
}
