import { createHash, randomBytes } from 'node:crypto';
import type { Signing } from '../sign/signing.js';
import { splitSignature, withSignature } from '../sign/trailer.js';
import { Readable } from 'node:stream';
import { TsmError } from '../errors/errors.js';
import { STORE_FORMAT, type StoreBackend, type StoreInfo } from './backend.js';
import { AVG_CHUNK, chunkStream, gearTable, MAX_CHUNK, MIN_CHUNK, type GearTable } from './chunker.js';
import { chunkId, sameCheck, snapshotName, type StoreKey } from './keys.js';
import { idsOf } from './local-backend.js';
import { decodeChunk, decodeObject, encodeObject } from './object.js';
import { decodeSnapshot, encodeSnapshot, type NewSnapshot, type Snapshot, type SnapshotMeta, type StreamRef } from './snapshot.js';
import {
  auditListing, checkNotRolledBack, emptyIndex, encodeIndex, indexAad, metaDigest, parseIndex, type IndexEntry, type IndexSeen, type StoreIndex,
} from './snapshot-index.js';
import { verifyChunks, type ChunkVerifyReport } from './verify.js';

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

export interface OpenOptions {
  /** make the store when missing (encrypted when a key is given) */
  create: boolean;
  key: StoreKey | null;
  /** this host's record of the index numbers it has seen (null: no rollback check, for tests and tools) */
  seen: IndexSeen | null;
  /**
   * signs and checks an unencrypted store's index (an encrypted one is sealed
   * with the key instead); null: unchecked, for tests and tools only
   */
  signing?: Signing | null;
}

export interface Listing {
  /** readable snapshots the index lists, oldest first */
  snapshots: SnapshotMeta[];
  /** listed but unreadable (or altered since indexed), and metadata the index does not list */
  bad: Array<{ id: string; problem: string }>;
  /** in the index, but their metadata is gone from the store */
  missing: IndexEntry[];
}

/**
 * A content-addressed, deduplicating, optionally encrypted checkpoint store
 * over a backend. All encoding happens here (on the host that has the key); the
 * backend only stores objects.
 */
export class ChunkStore {
  private readonly gear: GearTable;
  private constructor(
    readonly backend: StoreBackend,
    readonly info: StoreInfo,
    private readonly key: StoreKey | null,
    private readonly seen: IndexSeen | null,
    private readonly signing: Signing | null,
  ) {
    this.gear = gearTable(key ? key.gearKey : null);
  }

  get location(): string {
    return this.backend.location;
  }
  get encrypted(): boolean {
    return this.info.encryption !== null;
  }

  /** Open (with create: make it when missing, encrypted when a key is given). Checks the key against the store. */
  static async open(backend: StoreBackend, o: OpenOptions): Promise<ChunkStore> {
    const fresh: StoreInfo = {
      format: STORE_FORMAT,
      id: randomBytes(16).toString('hex'),
      createdAt: new Date().toISOString(),
      chunking: { algorithm: o.key ? 'fastcdc-gear32-keyed' : 'fastcdc-gear32', min: MIN_CHUNK, avg: AVG_CHUNK, max: MAX_CHUNK },
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
    if ((info.chunking.algorithm === 'fastcdc-gear32-keyed') !== Boolean(info.encryption)) {
      throw new TsmError('ECONFIG', `store ${backend.location} says ${info.chunking.algorithm} chunking for an ${info.encryption ? 'encrypted' : 'unencrypted'} store`, { fix: 'the store.json was altered; use another store' });
    }
    return new ChunkStore(backend, info, o.key, o.seen, o.signing ?? null);
  }

  /** The name of a snapshot's files in the store: its id, or a keyed hash of it when encrypted. */
  nameOf(id: string): string {
    return snapshotName(id, this.key);
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
    for await (const data of chunkStream(src, this.gear)) {
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
          yield decodeChunk(objs[j]!, id, self.key, `chunk ${idHex.slice(0, 12)}… of ${what}`);
        }
      }
    })(), { objectMode: false });
  }

  /** The index, authenticated, and not older than one this host has seen. */
  async readIndex(): Promise<StoreIndex> {
    const where = this.location;
    const obj = await this.backend.getIndex();
    const seen = this.seen ? await this.seen.get(this.info.id) : null;
    const idx = obj ? parseIndex(await this.indexBody(decodeObject(obj, indexAad(this.info.id), this.key, `the index of store ${where}`)), this.info.id, where) : null;
    checkNotRolledBack(idx, seen, where);
    if (!idx) {
      const listed = await this.backend.listSnapshots();
      if (listed.length) {
        throw new TsmError('EINTEGRITY', `store ${where} holds ${listed.length} checkpoints but no index`, { fix: 'nothing was changed; its host lost or removed the index file: restore it from a backup, or use another store' });
      }
      return emptyIndex(this.info.id);
    }
    if (this.seen && idx.seq > (seen ?? -1)) await this.seen.raise(this.info.id, idx.seq);
    return idx;
  }

  /**
   * An unencrypted store's index is signed by the host that wrote it (the
   * store host, holding no key, could otherwise write any index it likes):
   * its signature is checked against the trusted keys. An encrypted one is
   * authenticated by its seal.
   */
  private async indexBody(plain: Buffer): Promise<Buffer> {
    if (this.key) return plain;
    const { body, signature } = splitSignature(plain, (what) => new TsmError('EINTEGRITY', `the index of store ${this.location} is invalid: ${what}`, { fix: 'nothing was changed; use another store' }));
    if (this.signing) await this.signing.verify('store-index', body, signature, `the index of store ${this.location}`);
    return body;
  }

  private async writeIndex(idx: StoreIndex): Promise<void> {
    const body = encodeIndex(idx);
    const plain = this.key || !this.signing ? body : withSignature(body, await this.signing.sign('store-index', body));
    await this.backend.putIndex(encodeObject(plain, indexAad(this.info.id), this.key, 3));
    if (this.seen) await this.seen.raise(this.info.id, idx.seq);
  }

  private metaAad(name: string): Buffer {
    return Buffer.from(`snapshot:${name}`);
  }

  /** Store a snapshot's metadata, then list it in the index (the commit point). Call with the store lock held. */
  async commit(s: NewSnapshot): Promise<number> {
    const idx = await this.readIndex();
    if (idx.snapshots.some((e) => e.id === s.meta.id)) {
      throw new TsmError('EEXIST_CHECKPOINT', `checkpoint ${s.meta.id} is already in ${this.location}`, { fix: 'use it as it is' });
    }
    const name = this.nameOf(s.meta.id);
    const meta = encodeObject(encodeSnapshot(s), this.metaAad(name), this.key, 3);
    const refs = sortedUnique(Buffer.concat([s.ids.criu, s.ids.upper]));
    await this.backend.putSnapshot(name, meta, refs);
    const entry: IndexEntry = { id: s.meta.id, name, container: s.meta.container, createdAt: s.meta.createdAt, meta: metaDigest(meta) };
    await this.writeIndex({ ...idx, seq: idx.seq + 1, snapshots: [...idx.snapshots, entry] });
    return meta.length + refs.length;
  }

  /** One snapshot by id; with `expect` (its index entry), the stored object must be the one indexed. */
  async load(id: string, expect?: IndexEntry): Promise<Snapshot> {
    const name = this.nameOf(id);
    const obj = await this.backend.getSnapshot(name);
    if (expect && metaDigest(obj) !== expect.meta) {
      throw new TsmError('EINTEGRITY', `the metadata of checkpoint ${id} is not the one the store's index lists`, { fix: 'nothing was changed; use another checkpoint' });
    }
    return decodeSnapshot(decodeObject(obj, this.metaAad(name), this.key, `checkpoint ${id}`), id);
  }

  /** Every snapshot the index lists (of one container), checked against the index; oldest first. */
  async list(container?: string): Promise<Listing> {
    const idx = await this.readIndex();
    const { missing, strays } = auditListing(idx, await this.backend.listSnapshots());
    const gone = new Set(missing.map((e) => e.name));
    const snapshots: SnapshotMeta[] = [];
    const bad: Array<{ id: string; problem: string }> = [];
    for (const e of idx.snapshots) {
      if (gone.has(e.name) || (container && e.container !== container)) continue;
      try {
        const s = await this.load(e.id, e);
        if (s.meta.container !== e.container || s.meta.createdAt !== e.createdAt) throw new TsmError('EINTEGRITY', 'its metadata disagrees with the index', { fix: 'use another checkpoint' });
        snapshots.push(s.meta);
      } catch (err) {
        if (err instanceof TsmError && err.code === 'EINVAL_ARG') throw err;
        bad.push({ id: e.id, problem: (err as Error).message });
      }
    }
    for (const name of strays) bad.push(await this.describeStray(name));
    snapshots.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    return { snapshots, bad, missing: missing.filter((e) => !container || e.container === container) };
  }

  /** Metadata the index does not list: an interrupted checkpoint, or one the store host put back. */
  private async describeStray(name: string): Promise<{ id: string; problem: string }> {
    const why = 'is not in the store\'s index (an interrupted checkpoint, or one put back after it was removed); tsmigrate store rm removes it';
    try {
      const obj = await this.backend.getSnapshot(name);
      const plain = decodeObject(obj, this.metaAad(name), this.key, `checkpoint file ${name}`);
      const json = JSON.parse(plain.subarray(4, 4 + plain.readUInt32BE(0)).toString('utf8')) as { id?: unknown };
      if (typeof json.id === 'string' && this.nameOf(json.id) === name) return { id: json.id, problem: `checkpoint ${json.id} ${why}` };
    } catch {
      /* named by its file below */
    }
    return { id: name, problem: `checkpoint file ${name} ${why}` };
  }

  /** Problems with one snapshot (empty: good): its metadata decodes, every chunk it needs is on the store host and intact there. */
  async check(id: string): Promise<string[]> {
    try {
      await this.load(id);
    } catch (e) {
      return [(e as Error).message];
    }
    const r = await this.backend.verify(this.nameOf(id));
    return [
      ...r.missing.map((c) => `chunk ${c.slice(0, 12)}… is missing`),
      ...r.bad.map((b) => `chunk ${b.id.slice(0, 12)}… is corrupted: ${b.problem}`),
    ];
  }

  /** Keyed verification: every chunk the snapshots need, read back and authenticated here (GCM tag or content hash, and id). */
  async verifyChunks(snaps: readonly Snapshot[]): Promise<ChunkVerifyReport> {
    return verifyChunks(this.backend, snaps, (obj, id, what) => decodeChunk(obj, id, this.key, what).length);
  }

  /** Take snapshots out of the index, then remove their files. Call with the store lock held. */
  async removeSnapshots(ids: readonly string[]): Promise<void> {
    const idx = await this.readIndex();
    const drop = new Set(ids);
    const kept = idx.snapshots.filter((e) => !drop.has(e.id));
    if (kept.length !== idx.snapshots.length) await this.writeIndex({ ...idx, seq: idx.seq + 1, snapshots: kept });
    for (const id of ids) await this.backend.deleteSnapshot(this.nameOf(id));
  }
}

function sortedUnique(ids: Buffer): Buffer {
  const set = new Set(idsOf(ids));
  return Buffer.concat([...set].sort().map((h) => Buffer.from(h, 'hex')));
}
