import type { Readable } from 'node:stream';
import type { StoreInfo, VerifyReport } from './backend.js';

/**
 * What a client asks of a host that keeps a store (part of the agent's API).
 * The host only stores and checks objects; it never sees a key.
 * storePutChunks' stream: records of [id: 32 bytes][length: u32 BE][object].
 * storePutSnapshot's stream: [meta length: u32 BE][meta object][refs].
 */
export interface StoreApi {
  storeOpen(p: { path: string; create: StoreInfo | null }): Promise<{ info: StoreInfo | null }>;
  storeLock(p: { path: string; timeoutMs: number }): Promise<{ ok: true }>;
  storeUnlock(p: { path: string }): Promise<{ ok: true }>;
  storeHas(p: { path: string; ids: string[] }): Promise<{ have: boolean[] }>;
  storePutChunks(p: { path: string }, data: Readable): Promise<{ written: number; bytes: number }>;
  /** objects base64, in order */
  storeGetChunks(p: { path: string; ids: string[] }): Promise<{ objects: string[] }>;
  storeListSnapshots(p: { path: string }): Promise<{ ids: string[] }>;
  /** the metadata object from `offset`, at most META_PAGE bytes (base64), and its total size */
  storeGetSnapshot(p: { path: string; id: string; offset: number }): Promise<{ meta: string; total: number }>;
  storePutSnapshot(p: { path: string; id: string }, data: Readable): Promise<{ ok: true }>;
  storeDeleteSnapshot(p: { path: string; id: string }): Promise<{ ok: true }>;
  /** the index object from `offset`, at most META_PAGE bytes (base64); null when the store has none */
  storeGetIndex(p: { path: string; offset: number }): Promise<{ index: string | null; total: number }>;
  /** replace the index object (the stream is the object) */
  storePutIndex(p: { path: string }, data: Readable): Promise<{ ok: true }>;
  storeVerify(p: { path: string; snapshot: string | null }): Promise<VerifyReport>;
  storeCollect(p: { path: string }): Promise<{ chunks: number; bytes: number }>;
  storeStats(p: { path: string }): Promise<{ chunks: number; bytes: number; snapshots: number }>;
}

/** Most ids per storeHas / storeGetChunks call (keeps each JSON frame well under its bound). */
export const MAX_IDS_PER_CALL = 4096;
export const MAX_GET_PER_CALL = 32;
/** Reported problems are capped (the counts stay exact in `chunks`). */
export const MAX_REPORTED = 1000;
export const META_PAGE = 4 << 20;
