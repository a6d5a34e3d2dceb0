import { SNAPSHOT_FORMAT, type SnapshotMeta, type StreamRef } from '../../src/store/snapshot.js';
import { sampleInfo } from './manifests.js';

/** Well-formed snapshot metadata (what put-checkpoint.ts makes) for stores a test crafts. */
export function craftMeta(id: string, container: string, createdAt: string, criu: StreamRef, upper: StreamRef): SnapshotMeta {
  const info = sampleInfo(id, container);
  return {
    format: SNAPSHOT_FORMAT, id, container, createdAt, tag: null, schedule: null, epoch: 0,
    checkpoint: { ...info, createdAt, container: { ...info.container, createdAt } },
    streams: { criu, upper },
  };
}
