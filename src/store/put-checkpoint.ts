import { packTree } from '../archive/pack.js';
import { checkpointInfo, withCapture, type CaptureRequest } from '../checkpoint/capture.js';
import type { Runtime } from '../runtime/context.js';
import type { ChunkStore, WriteCounters } from './chunk-store.js';
import { SNAPSHOT_FORMAT, snapshotBody, type SnapshotMeta } from './snapshot.js';

export interface StoreCheckpointRequest extends CaptureRequest {
  tag?: string;
  schedule?: string;
}

export interface StoreCheckpointResult {
  meta: SnapshotMeta;
  counters: WriteCounters;
  /** bytes the store grew by: new chunks + metadata */
  addedBytes: number;
  storeMs: number;
}

/** How long a checkpoint waits for another writer (or the collector) of the same store. */
export const STORE_LOCK_WAIT_MS = 10 * 60_000;

/**
 * Checkpoint a container into a deduplicating store: frozen only for the dump
 * (see captureLocked), then its images and upper layer are chunked, and only
 * chunks the store lacks are sent. The checkpoint exists once its metadata is
 * committed, after every chunk it needs is durable in the store.
 */
export async function checkpointToStore(rt: Runtime, store: ChunkStore, req: StoreCheckpointRequest): Promise<StoreCheckpointResult> {
  return withCapture(rt, req, async (cap, criu) => {
    const ts = performance.now();
    const counters: WriteCounters = { logical: 0, chunks: 0, newChunks: 0, newBytes: 0 };
    await store.backend.lock({ timeoutMs: STORE_LOCK_WAIT_MS });
    let meta: SnapshotMeta;
    let metaBytes: number;
    try {
      const criuStream = await store.writeStream(packTree(cap.images), counters);
      const upperStream = await store.writeStream(packTree(cap.upper), counters);
      const storeMs = performance.now() - ts;
      meta = {
        format: SNAPSHOT_FORMAT,
        id: cap.id,
        container: req.name,
        createdAt: new Date().toISOString(),
        tag: req.tag ?? null,
        schedule: req.schedule ?? null,
        epoch: cap.state.epoch ?? 0,
        checkpoint: checkpointInfo(cap, criu, req, { packMs: storeMs, tag: req.tag ?? null }),
        streams: { criu: criuStream.ref, upper: upperStream.ref },
      };
      const ids = { criu: criuStream.ids, upper: upperStream.ids };
      // signed over the exact bytes stored: the metadata and every chunk id
      const body = snapshotBody(meta, ids);
      metaBytes = await store.commit({ meta, ids, body, signature: await rt.signing.sign('checkpoint', body) });
    } finally {
      await store.backend.unlock();
    }
    return { meta, counters, addedBytes: counters.newBytes + metaBytes, storeMs: performance.now() - ts };
  });
}
