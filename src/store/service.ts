import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TsmError } from '../errors/errors.js';
import type { StoreInfo, VerifyReport } from './backend.js';
import { MAX_REPORTED, META_PAGE, type StoreApi } from './api.js';
import { LocalBackend } from './local-backend.js';
import { RecordParser } from './records.js';
import { openerBeneath, placeStore, type StoreRoots } from './store-dirs.js';

/** Objects in the index are bounded as metadata is. */
const MAX_INDEX = 64 << 20;

async function readBounded(data: Readable, max: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of data as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new TsmError('EPROTO', `${what} over ${max >> 20} MiB`, { fix: 'report a tsmigrate bug' });
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/**
 * The store side of the agent: serves StoreApi from directories on this host,
 * only beneath its store directories (store-dirs.ts), and every call but
 * storeOpen only on a store this connection has opened.
 */
export class StoreService implements StoreApi {
  private readonly backends = new Map<string, LocalBackend>();
  private readonly opened = new Set<string>();
  constructor(private readonly roots: StoreRoots = 'any') {}

  private backend(p: string, mustBeOpen = true): LocalBackend {
    const place = placeStore(p, this.roots);
    if (mustBeOpen && !this.opened.has(place.dir)) {
      throw new TsmError('EBAD_STATE', `the store ${place.dir} is not open on this connection`, { fix: 'open it first (storeOpen); install the same tsmigrate version on both hosts' });
    }
    let b = this.backends.get(place.dir);
    if (!b) {
      b = new LocalBackend(place.dir, place.dir, openerBeneath(place));
      this.backends.set(place.dir, b);
    }
    return b;
  }

  async storeOpen(p: { path: string; create: StoreInfo | null }) {
    const info = await this.backend(p.path, false).open(p.create);
    if (info) this.opened.add(placeStore(p.path, this.roots).dir);
    return { info };
  }
  async storeLock(p: { path: string; timeoutMs: number }) {
    await this.backend(p.path).lock({ timeoutMs: p.timeoutMs });
    return { ok: true as const };
  }
  async storeUnlock(p: { path: string }) {
    await this.backend(p.path).unlock();
    return { ok: true as const };
  }
  async storeHas(p: { path: string; ids: string[] }) {
    return { have: await this.backend(p.path).has(p.ids) };
  }
  async storePutChunks(p: { path: string }, data: Readable) {
    const b = this.backend(p.path);
    let written = 0;
    let bytes = 0;
    const parser = new RecordParser();
    // the stream's and the parser's errors reach the loop through the parser; a failed write ends both
    const piped = pipeline(data, parser).catch(() => undefined);
    let batch: Array<{ id: string; obj: Buffer }> = [];
    const flush = async () => {
      const r = await b.putChunks(batch);
      written += r.written;
      bytes += r.bytes;
      batch = [];
    };
    try {
      for await (const rec of parser as AsyncIterable<{ id: string; obj: Buffer }>) {
        batch.push(rec);
        if (batch.length >= 64) await flush();
      }
      await flush();
    } finally {
      parser.destroy();
      await piped;
    }
    return { written, bytes };
  }
  async storeGetChunks(p: { path: string; ids: string[] }) {
    return { objects: (await this.backend(p.path).getChunks(p.ids)).map((o) => o.toString('base64')) };
  }
  async storeListSnapshots(p: { path: string }) {
    return { ids: await this.backend(p.path).listSnapshots() };
  }
  async storeGetSnapshot(p: { path: string; id: string; offset: number }) {
    const all = await this.backend(p.path).getSnapshot(p.id);
    return { meta: all.subarray(p.offset, p.offset + META_PAGE).toString('base64'), total: all.length };
  }
  async storePutSnapshot(p: { path: string; id: string }, data: Readable) {
    const all = await readBounded(data, 64 << 20, 'checkpoint metadata');
    if (all.length < 4) throw new TsmError('EPROTO', 'truncated checkpoint metadata', { fix: 'retry' });
    const len = all.readUInt32BE(0);
    if (4 + len > all.length) throw new TsmError('EPROTO', 'truncated checkpoint metadata', { fix: 'retry' });
    await this.backend(p.path).putSnapshot(p.id, all.subarray(4, 4 + len), all.subarray(4 + len));
    return { ok: true as const };
  }
  async storeDeleteSnapshot(p: { path: string; id: string }) {
    await this.backend(p.path).deleteSnapshot(p.id);
    return { ok: true as const };
  }
  async storeGetIndex(p: { path: string; offset: number }) {
    const all = await this.backend(p.path).getIndex();
    return all ? { index: all.subarray(p.offset, p.offset + META_PAGE).toString('base64'), total: all.length } : { index: null, total: 0 };
  }
  async storePutIndex(p: { path: string }, data: Readable) {
    const all = await readBounded(data, MAX_INDEX, 'the store index');
    await this.backend(p.path).putIndex(all);
    return { ok: true as const };
  }
  async storeVerify(p: { path: string; snapshot: string | null }): Promise<VerifyReport> {
    const r = await this.backend(p.path).verify(p.snapshot);
    return { chunks: r.chunks, bytes: r.bytes, bad: r.bad.slice(0, MAX_REPORTED), missing: r.missing.slice(0, MAX_REPORTED) };
  }
  async storeCollect(p: { path: string }) {
    return this.backend(p.path).collect();
  }
  async storeStats(p: { path: string }) {
    return this.backend(p.path).stats();
  }
  /** the connection ended: release any store lock it held */
  async close(): Promise<void> {
    for (const b of this.backends.values()) await b.close().catch(() => undefined);
  }
}
