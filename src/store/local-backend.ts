import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { isCheckpointId } from '../checkpoint/manifest.js';
import { TsmError } from '../errors/errors.js';
import { writeFileAtomic, writeJsonAtomic, fsyncDir } from '../state/atomic.js';
import { acquireLock, type Lock } from '../state/lock.js';
import { checkStoreInfo, type StoreBackend, type StoreInfo, type VerifyReport } from './backend.js';
import { checkObject } from './object.js';

const HEX64 = /^[0-9a-f]{64}$/;

export function assertChunkId(id: string): void {
  if (!HEX64.test(id)) throw new TsmError('EINVAL_ARG', `invalid chunk id "${id.slice(0, 80)}"`, { fix: 'report a tsmigrate bug' });
}

export function assertSnapshotId(id: string): void {
  if (!isCheckpointId(id)) throw new TsmError('EINVAL_ARG', `invalid checkpoint id "${id.slice(0, 80)}"`, { fix: 'list them with tsmigrate store ls' });
}

/** A store directory on this host. Every file is root-only (0600 in 0700 directories). */
export class LocalBackend implements StoreBackend {
  readonly location: string;
  private held: Lock | undefined;
  constructor(readonly dir: string, label?: string) {
    if (!path.isAbsolute(dir) || path.normalize(dir) !== dir.replace(/\/+$/, '') || dir.split('/').includes('..')) {
      throw new TsmError('EINVAL_ARG', `store path "${dir}" must be absolute and normalised`, { fix: 'give a path such as /srv/tsmigrate-store' });
    }
    this.location = label ?? dir;
  }

  /** where a chunk's object is (tests craft stores through it) */
  chunkFile(id: string): string {
    return this.chunkPath(id);
  }
  private chunkPath(id: string): string {
    assertChunkId(id);
    return path.join(this.dir, 'chunks', id.slice(0, 2), id);
  }
  private snapPath(id: string, ext: 'meta' | 'refs'): string {
    assertSnapshotId(id);
    return path.join(this.dir, 'snapshots', `${id}.${ext}`);
  }

  async open(create: StoreInfo | null): Promise<StoreInfo | null> {
    const file = path.join(this.dir, 'store.json');
    const read = async (): Promise<StoreInfo | null> => {
      const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null;
        throw e;
      });
      if (text === null) return null;
      let info: StoreInfo;
      try {
        info = JSON.parse(text) as StoreInfo;
      } catch {
        throw new TsmError('ECONFIG', `${file} is not valid JSON`, { fix: 'the store is damaged; restore store.json from a backup or use another store' });
      }
      return checkStoreInfo(info, this.location);
    };
    const have = await read();
    if (have || !create) return have;
    const st = await fs.stat(this.dir).catch(() => undefined);
    if (st && !st.isDirectory()) throw new TsmError('EINVAL_ARG', `store path ${this.dir} is not a directory`, { fix: 'choose another path' });
    if (st && (await fs.readdir(this.dir)).length > 0) {
      throw new TsmError('EINVAL_ARG', `${this.dir} is a non-empty directory that is not a tsmigrate store`, { fix: 'choose an empty or new directory' });
    }
    await fs.mkdir(path.join(this.dir, 'chunks'), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(this.dir, 'snapshots'), { mode: 0o700 }).catch(() => undefined);
    await fs.chmod(this.dir, 0o700);
    await writeJsonAtomic(file, create, 0o600);
    return create;
  }

  async lock(wait: { timeoutMs: number }): Promise<void> {
    const until = Date.now() + wait.timeoutMs;
    for (;;) {
      try {
        this.held = await acquireLock(path.join(this.dir, 'lock'), `store ${this.location}`);
        return;
      } catch (e) {
        if (!(e instanceof TsmError) || e.code !== 'EBUSY' || Date.now() >= until) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async unlock(): Promise<void> {
    const l = this.held;
    this.held = undefined;
    await l?.release();
  }

  async has(ids: string[]): Promise<boolean[]> {
    return Promise.all(ids.map((id) => fs.access(this.chunkPath(id)).then(() => true, () => false)));
  }

  async putChunks(objects: Array<{ id: string; obj: Buffer }>): Promise<{ written: number; bytes: number }> {
    let written = 0;
    let bytes = 0;
    const dirs = new Set<string>();
    for (const { id, obj } of objects) {
      const p = this.chunkPath(id);
      if (await fs.access(p).then(() => true, () => false)) continue;
      const d = path.dirname(p);
      if (!dirs.has(d)) {
        await fs.mkdir(d, { recursive: true, mode: 0o700 });
        dirs.add(d);
      }
      const tmp = `${p}.tmp-${randomBytes(3).toString('hex')}`;
      await fs.writeFile(tmp, obj, { mode: 0o600 });
      await fs.rename(tmp, p);
      written++;
      bytes += obj.length;
    }
    return { written, bytes };
  }

  async getChunks(ids: string[]): Promise<Buffer[]> {
    return Promise.all(
      ids.map(async (id) => {
        const obj = await fs.readFile(this.chunkPath(id)).catch((e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') throw new TsmError('EINTEGRITY', `chunk ${id.slice(0, 12)}… is missing from ${this.location}`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
          throw e;
        });
        const problem = checkObject(obj);
        if (problem) throw new TsmError('EINTEGRITY', `chunk ${id.slice(0, 12)}… in ${this.location} is corrupted: ${problem}`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
        return obj;
      }),
    );
  }

  async listSnapshots(): Promise<string[]> {
    const names = await fs.readdir(path.join(this.dir, 'snapshots')).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.meta')).map((n) => n.slice(0, -5)).filter(isCheckpointId).sort();
  }

  async getSnapshot(id: string): Promise<Buffer> {
    return fs.readFile(this.snapPath(id, 'meta')).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${id}" in ${this.location}`, { fix: `list them with tsmigrate store ls --store ${this.location}` });
      throw e;
    });
  }

  async putSnapshot(id: string, meta: Buffer, refs: Buffer): Promise<void> {
    if (refs.length % 32 !== 0) throw new TsmError('EINVAL_ARG', 'snapshot refs must be whole 32-byte ids', { fix: 'report a tsmigrate bug' });
    const metaPath = this.snapPath(id, 'meta');
    if (await fs.access(metaPath).then(() => true, () => false)) {
      throw new TsmError('EEXIST_CHECKPOINT', `checkpoint ${id} is already in ${this.location}`, { fix: 'use it as it is' });
    }
    // every chunk must be there and on disk before the snapshot that needs it
    const missing = (await this.has(idsOf(refs))).filter((h) => !h).length;
    if (missing) throw new TsmError('EINTEGRITY', `${missing} chunks of checkpoint ${id} are missing from ${this.location}`, { fix: 'retry the checkpoint' });
    await execa('sync', ['-f', this.dir]);
    await fs.mkdir(path.dirname(metaPath), { recursive: true, mode: 0o700 });
    for (const [p, data] of [[this.snapPath(id, 'refs'), refs], [metaPath, meta]] as const) {
      const tmp = `${p}.tmp-${randomBytes(3).toString('hex')}`;
      const fh = await fs.open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, p);
    }
    await fsyncDir(path.dirname(metaPath));
  }

  async getIndex(): Promise<Buffer | null> {
    return fs.readFile(path.join(this.dir, 'index')).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
  }

  async putIndex(obj: Buffer): Promise<void> {
    await writeFileAtomic(path.join(this.dir, 'index'), obj, 0o600);
  }

  async deleteSnapshot(id: string): Promise<void> {
    await fs.rm(this.snapPath(id, 'meta'), { force: true });
    await fsyncDir(path.join(this.dir, 'snapshots'));
    await fs.rm(this.snapPath(id, 'refs'), { force: true });
  }

  private async allChunkIds(): Promise<string[]> {
    const out: string[] = [];
    for (const d of await fs.readdir(path.join(this.dir, 'chunks')).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await fs.readdir(path.join(this.dir, 'chunks', d))) if (HEX64.test(f)) out.push(f);
    }
    return out;
  }

  private async referenced(): Promise<Set<string>> {
    const live = new Set<string>();
    for (const id of await this.listSnapshots()) {
      const refs = await fs.readFile(this.snapPath(id, 'refs')).catch(() => Buffer.alloc(0));
      for (const r of idsOf(refs)) live.add(r);
    }
    return live;
  }

  async verify(snapshot: string | null): Promise<VerifyReport> {
    const ids = snapshot ? idsOf(await fs.readFile(this.snapPath(snapshot, 'refs')).catch(() => {
      throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${snapshot}" in ${this.location}`, { fix: 'list them with tsmigrate store ls' });
    })) : await this.allChunkIds();
    const report: VerifyReport = { chunks: 0, bytes: 0, bad: [], missing: [] };
    const refs = snapshot ? new Set<string>() : await this.referenced();
    if (!snapshot) {
      const have = new Set(ids);
      for (const r of refs) if (!have.has(r)) report.missing.push(r);
    }
    for (const id of ids) {
      const obj = await fs.readFile(this.chunkPath(id)).catch(() => undefined);
      if (!obj) {
        report.missing.push(id);
        continue;
      }
      report.chunks++;
      report.bytes += obj.length;
      const problem = checkObject(obj);
      if (problem) report.bad.push({ id, problem });
    }
    return report;
  }

  async collect(): Promise<{ chunks: number; bytes: number }> {
    const live = await this.referenced();
    let chunks = 0;
    let bytes = 0;
    for (const id of await this.allChunkIds()) {
      if (live.has(id)) continue;
      const p = this.chunkPath(id);
      bytes += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
      await fs.rm(p, { force: true });
      chunks++;
    }
    // refs whose meta is gone (a delete cut short)
    for (const n of await fs.readdir(path.join(this.dir, 'snapshots')).catch(() => [] as string[])) {
      if (n.includes('.tmp-')) await fs.rm(path.join(this.dir, 'snapshots', n), { force: true });
      else if (n.endsWith('.refs') && !(await fs.access(path.join(this.dir, 'snapshots', `${n.slice(0, -5)}.meta`)).then(() => true, () => false))) {
        await fs.rm(path.join(this.dir, 'snapshots', n), { force: true });
      }
    }
    return { chunks, bytes };
  }

  async stats(): Promise<{ chunks: number; bytes: number; snapshots: number }> {
    let chunks = 0;
    let bytes = 0;
    for (const id of await this.allChunkIds()) {
      chunks++;
      bytes += (await fs.stat(this.chunkPath(id)).catch(() => ({ size: 0 }))).size;
    }
    return { chunks, bytes, snapshots: (await this.listSnapshots()).length };
  }

  async close(): Promise<void> {
    await this.unlock();
  }
}

/** 32-byte binary ids → hex. */
export function idsOf(refs: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i + 32 <= refs.length; i += 32) out.push(refs.subarray(i, i + 32).toString('hex'));
  return out;
}
