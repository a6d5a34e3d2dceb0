import { SNAPSHOT_FORMAT, type SnapshotMeta, type StreamRef } from '../../src/store/snapshot.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Well-formed snapshot metadata (what put-checkpoint.ts makes) for stores a test crafts. */
export function craftMeta(id: string, container: string, createdAt: string, criu: StreamRef, upper: StreamRef): SnapshotMeta {
  return {
    format: SNAPSHOT_FORMAT, id, container, createdAt, tag: null, schedule: null, epoch: 0,
    checkpoint: {
      id, tag: null, createdAt,
      container: {
        name: container, image: { name: 'busybox', digest: DIGEST }, command: ['sh', '-c', 'sleep 1000'], env: ['PATH=/bin'], workdir: '/',
        hostname: container, limits: { memoryBytes: 64 << 20, cpus: 0.5, pidsLimit: 100 }, net: { mode: 'none' }, createdAt,
      },
      image: { name: 'busybox', digest: DIGEST },
      network: null,
      stdio: { stdout: 'pipe:[1234]', stderr: 'pipe:[1235]' },
      criu: { version: 'Version: 4.2.1', options: { tcpEstablished: false, fileLocks: true, leaveRunning: true } },
      host: { kernel: '6.18.0', arch: 'x64', hostname: 'vm' },
      timings: { frozenMs: 10, dumpMs: 8, snapshotMs: 2, packMs: 30, totalMs: 50 },
    } as SnapshotMeta['checkpoint'],
    streams: { criu, upper },
  };
}
