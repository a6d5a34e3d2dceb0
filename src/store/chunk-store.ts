import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { TsmError } from '../errors/errors.js';
import { STORE_FORMAT, type StoreBackend, type StoreInfo } from './backend.js';
import { AVG_CHUNK, chunkStream, MAX_CHUNK, MIN_CHUNK } from './chunker.js';
import { chunkId, sameCheck, type StoreKey } from './keys.js';
import { idsOf } from './local-backend.js';
import { decodeObject, encodeObject } from './object.js';
import { decodeSnapshot, encodeSnapshot, type Snapshot, type SnapshotMeta, type StreamRef } from './snapshot.js';

export interface WriteCounters {
  /** bytes of the streams (logical) */
  logical: number;
  chunks: number;
  /** chunks and stored bytes that were new to the store */
  newChunks: number;
  newBytes: number;
}

const BATCH_BYTES = 8 << 20;
const BATCH_CHUNKS = 256;
const READ_BATCH = 32;

/**
 * A content-addressed, deduplicating, optionally encrypted checkpoint store
 * over a backend. All encoding happens here (on the host that has the key); the
 * backend only stores objects.
 */
export class ChunkStore {
  private constructor(readonly backend: StoreBackend, readonly info: StoreInfo, private readonly key: StoreKey | null) {}

  get location(): string {
    return this.backend.location;
  }
  get encrypted(): boolean {
    return this.info.encryption !== null;
  }

  /** Open (with create: make it when missing, encrypted when a key is given). Checks the key against the store. */
  static async open(backend: StoreBackend, o: { create: boolean; key: StoreKey | null }): Promise<ChunkStore> {
    const fresh: StoreInfo = {
      format: STORE_FORMAT,
      createdAt: new Date().toISOString(),
      chunking: { algorithm: 'fastcdc-gear32', min: MIN_CHUNK, avg: AVG_CHUNK, max: MAX_CHUNK },
      encryption: o.key ? { algorithm: 'aes-256-gcm', keyCheck: o.key.check } : null,
    };
    const info = await backend.open(o.create ? fresh : null);
    if (!info) {
      throw new TsmError('ENOENT_CHECKPOINT', `there is no checkpoint store at ${backend.location}`, { fix: 'check --store, or take a checkpoint into it first (tsmigrate checkpoint NAME --store ...)' });
    }
    if (info.encryption && !o.key) {
      throw new TsmError('EINVAL_ARG', `store ${backend.location} is encrypted`, { fix: 'give its key with --encrypt-key FILE' });
    }
    if (!info.encryption && o.key) {
      throw new TsmError('EINVAL_ARG', `store ${backend.location} is not encrypted, but --encrypt-key was given`, { fix: 'leave out --encrypt-key, or use a new store for encrypted checkpoints' });
    }
    if (info.encryption && o.key && !sameCheck(info.encryption.keyCheck, o.key.check)) {
      throw new TsmError('EINVAL_ARG', `--encrypt-key is not the key of store ${backend.location}`, { fix: 'give the key file the store was created with' });
    }
    return new ChunkStore(backend, info, o.key);
  }

  /** Chunk, deduplicate, encode and store a stream; returns its reference and chunk ids (32 bytes each). */
  async writeStream(src: AsyncIterable<Buffer>, counters: WriteCounters): Promise<{ ref: StreamRef; ids: Buffer }> {
    const hash = createHash('sha256');
    const ids: Buffer[] = [];
    let bytes = 0;
    let batch: Array<{ id: Buffer; data: Buffer }> = [];
    let batchBytes = 0;
    const seen = new Set<string>();
    let inFlight: Promise<void> = Promise.resolve();
    const flush = async () => {
      if (!batch.length) return;
      const fresh = batch.filter((c) => {
        const h = c.id.toString('hex');
        if (seen.has(h)) return false;
        seen.add(h);
        return true;
      });
      // the next batch is built while this one is in flight
      batch = [];
      batchBytes = 0;
      const have = await this.backend.has(fresh.map((c) => c.id.toString('hex')));
      const objects = fresh.filter((_c, i) => !have[i]).map((c) => ({ id: c.id.toString('hex'), obj: encodeObject(c.data, c.id, this.key) }));
      if (objects.length) {
        const r = await this.backend.putChunks(objects);
        counters.newChunks += r.written;
        counters.newBytes += r.bytes;
      }
    };
    for await (const data of chunkStream(src)) {
      hash.update(data);
      bytes += data.length;
      const id = chunkId(data, this.key);
      ids.push(id);
      batch.push({ id, data });
      batchBytes += data.length;
      if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_CHUNKS) {
        // one batch on its way to the store while the next is chunked
        await inFlight;
        inFlight = flush();
        inFlight.catch(() => undefined);
      }
    }
    await inFlight;
    await flush();
    counters.logical += bytes;
    counters.chunks += ids.length;
    return { ref: { bytes, sha256: hash.digest('hex'), chunks: ids.length }, ids: Buffer.concat(ids) };
  }

  /** The stream back, every chunk checked (object checksum, GCM tag, content id). */
  readStream(ids: Buffer, what: string): Readable {
    const list = idsOf(ids);
    const self = this;
    return Readable.from((async function* () {
      // one batch in flight while the previous one is checked and consumed
      const fetch = (i: number) => (i < list.length ? self.backend.getChunks(list.slice(i, i + READ_BATCH)) : Promise.resolve([]));
      let next = fetch(0);
      for (let i = 0; i < list.length; i += READ_BATCH) {
        const part = list.slice(i, i + READ_BATCH);
        const objs = await next;
        next = fetch(i + READ_BATCH);
        next.catch(() => undefined);
        for (let j = 0; j < part.length; j++) {
          const idHex = part[j]!;
          const id = Buffer.from(idHex, 'hex');
          const plain = decodeObject(objs[j]!, id, self.key, `chunk ${idHex.slice(0, 12)}… of ${what}`);
          if (!chunkId(plain, self.key).equals(id)) {
            throw new TsmError('EINTEGRITY', `chunk ${idHex.slice(0, 12)}… of ${what} does not match its id`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
          }
          yield plain;
        }
      }
    })(), { objectMode: false });
  }

  async commit(s: Snapshot): Promise<number> {
    const aad = Buffer.from(`snapshot:${s.meta.id}`);
    const meta = encodeObject(encodeSnapshot(s), aad, this.key, 3);
    const refs = sortedUnique(Buffer.concat([s.ids.criu, s.ids.upper]));
    await this.backend.putSnapshot(s.meta.id, meta, refs);
    return meta.length + refs.length;
  }

  async load(id: string): Promise<Snapshot> {
    const obj = await this.backend.getSnapshot(id);
    return decodeSnapshot(decodeObject(obj, Buffer.from(`snapshot:${id}`), this.key, `checkpoint ${id}`), id);
  }

  /** Every snapshot's metadata, oldest first. Unreadable ones are reported in `bad`. */
  async list(container?: string): Promise<{ snapshots: SnapshotMeta[]; bad: Array<{ id: string; problem: string }> }> {
    const snapshots: SnapshotMeta[] = [];
    const bad: Array<{ id: string; problem: string }> = [];
    for (const id of await this.backend.listSnapshots()) {
      try {
        const s = await this.load(id);
        if (!container || s.meta.container === container) snapshots.push(s.meta);
      } catch (e) {
        if (e instanceof TsmError && e.code === 'EINVAL_ARG') throw e;
        bad.push({ id, problem: (e as Error).message });
      }
    }
    snapshots.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { snapshots, bad };
  }

  /** Problems with one snapshot (empty: good): its metadata decodes, every chunk it needs is there and intact. */
  async check(id: string): Promise<string[]> {
    try {
      await this.load(id);
    } catch (e) {
      return [(e as Error).message];
    }
    const r = await this.backend.verify(id);
    return [
      ...r.missing.map((c) => `chunk ${c.slice(0, 12)}… is missing`),
      ...r.bad.map((b) => `chunk ${b.id.slice(0, 12)}… is corrupted: ${b.problem}`),
    ];
  }

  async remove(id: string): Promise<void> {
    await this.backend.getSnapshot(id);
    await this.backend.deleteSnapshot(id);
  }
}

function sortedUnique(ids: Buffer): Buffer {
  const set = new Set(idsOf(ids));
  return Buffer.concat([...set].sort().map((h) => Buffer.from(h, 'hex')));
}
