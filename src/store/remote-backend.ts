import { Readable } from 'node:stream';
import type { StoreApi } from './api.js';
import { MAX_GET_PER_CALL, MAX_IDS_PER_CALL } from './api.js';
import type { StoreBackend, StoreInfo, VerifyReport } from './backend.js';
import { encodeRecords } from './records.js';

/** A store directory on another host, reached through its agent (over SSH). */
export class RemoteBackend implements StoreBackend {
  readonly location: string;
  constructor(private readonly agent: StoreApi, private readonly dir: string, host: string, private readonly onClose: () => Promise<void>) {
    this.location = `${host}:${dir}`;
  }
  async open(create: StoreInfo | null) {
    return (await this.agent.storeOpen({ path: this.dir, create })).info;
  }
  async lock(wait: { timeoutMs: number }) {
    await this.agent.storeLock({ path: this.dir, timeoutMs: wait.timeoutMs });
  }
  async unlock() {
    await this.agent.storeUnlock({ path: this.dir });
  }
  async has(ids: string[]) {
    const out: boolean[] = [];
    for (let i = 0; i < ids.length; i += MAX_IDS_PER_CALL) out.push(...(await this.agent.storeHas({ path: this.dir, ids: ids.slice(i, i + MAX_IDS_PER_CALL) })).have);
    return out;
  }
  async putChunks(objects: Array<{ id: string; obj: Buffer }>) {
    return this.agent.storePutChunks({ path: this.dir }, Readable.from([encodeRecords(objects)]));
  }
  async getChunks(ids: string[]) {
    const out: Buffer[] = [];
    for (let i = 0; i < ids.length; i += MAX_GET_PER_CALL) {
      const r = await this.agent.storeGetChunks({ path: this.dir, ids: ids.slice(i, i + MAX_GET_PER_CALL) });
      out.push(...r.objects.map((o) => Buffer.from(o, 'base64')));
    }
    return out;
  }
  async listSnapshots() {
    return (await this.agent.storeListSnapshots({ path: this.dir })).ids;
  }
  async getSnapshot(id: string) {
    const parts: Buffer[] = [];
    let got = 0;
    for (;;) {
      const r = await this.agent.storeGetSnapshot({ path: this.dir, id, offset: got });
      const b = Buffer.from(r.meta, 'base64');
      parts.push(b);
      got += b.length;
      if (got >= r.total || b.length === 0) break;
    }
    return Buffer.concat(parts);
  }
  async putSnapshot(id: string, meta: Buffer, refs: Buffer) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(meta.length);
    await this.agent.storePutSnapshot({ path: this.dir, id }, Readable.from([Buffer.concat([len, meta, refs])]));
  }
  async deleteSnapshot(id: string) {
    await this.agent.storeDeleteSnapshot({ path: this.dir, id });
  }
  async getIndex() {
    const parts: Buffer[] = [];
    let got = 0;
    for (;;) {
      const r = await this.agent.storeGetIndex({ path: this.dir, offset: got });
      if (r.index === null) return got ? Buffer.concat(parts) : null;
      const b = Buffer.from(r.index, 'base64');
      parts.push(b);
      got += b.length;
      if (got >= r.total || b.length === 0) break;
    }
    return Buffer.concat(parts);
  }
  async putIndex(obj: Buffer) {
    await this.agent.storePutIndex({ path: this.dir }, Readable.from([obj]));
  }
  async verify(snapshot: string | null): Promise<VerifyReport> {
    return this.agent.storeVerify({ path: this.dir, snapshot });
  }
  async collect() {
    return this.agent.storeCollect({ path: this.dir });
  }
  async stats() {
    return this.agent.storeStats({ path: this.dir });
  }
  async close() {
    await this.onClose();
  }
}
