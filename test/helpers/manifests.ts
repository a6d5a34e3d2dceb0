import type { CheckpointManifest } from '../../src/checkpoint/manifest.js';
import { CHECKPOINT_FORMAT } from '../../src/checkpoint/manifest.js';
import type { CheckpointInfo } from '../../src/checkpoint/manifest-schema.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** The checkpoint fields of a well-formed manifest (what capture.ts checkpointInfo makes). */
export function sampleInfo(id = 'web-20260101t000000z-abcdef', container = 'web'): CheckpointInfo {
  return {
    id,
    tag: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    container: {
      name: container, image: { name: 'busybox', digest: DIGEST }, command: ['sh', '-c', 'sleep 1000'], env: ['PATH=/bin'], workdir: '/',
      hostname: container, limits: { memoryBytes: 64 << 20, cpus: 0.5, pidsLimit: 100 }, net: { mode: 'none' }, createdAt: '2026-01-01T00:00:00.000Z',
    },
    image: { name: 'busybox', digest: DIGEST },
    network: null,
    stdio: { stdout: 'pipe:[1234]', stderr: 'pipe:[1235]' },
    criu: { version: 'Version: 4.2.1', options: { tcpEstablished: false, fileLocks: true, leaveRunning: true } },
    host: { kernel: '6.18.0', arch: 'x64', hostname: 'vm' },
    timings: { frozenMs: 10, dumpMs: 8, snapshotMs: 2, packMs: 30, totalMs: 50 },
  };
}

export function sampleManifest(): CheckpointManifest {
  return {
    format: CHECKPOINT_FORMAT,
    ...sampleInfo(),
    blobs: {
      criu: { file: 'criu.tar.zst', sha256: 'a'.repeat(64), size: 1000, compression: 'zstd', entries: 12 },
      upper: { file: 'upper.tar.zst', sha256: 'b'.repeat(64), size: 200, compression: 'zstd', entries: 3 },
      log: { file: 'dump.log', sha256: 'c'.repeat(64), size: 50, compression: 'none' },
    },
  };
}
