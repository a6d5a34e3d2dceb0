import path from 'node:path';
import { execa } from 'execa';
import { isCheckpointId } from '../checkpoint/manifest.js';
import { TsmError } from '../errors/errors.js';
import type { Lock } from '../state/lock.js';
import { ConfinedDir, SubdirCache } from '../util/confined-dir.js';
import { lockStoreDir } from './dir-lock.js';
import { checkStoreInfo, type StoreBackend, type StoreInfo, type VerifyReport } from './backend.js';
import { checkObject } from './object.js';

const HEX64 = /^[0-9a-f]{64}$/;

export function assertChunkId(id: string): void {
  if (!HEX64.test(id)) throw new TsmError('EINVAL_ARG', `invalid chunk id "${id.slice(0, 80)}"`, { fix: 'report a tsmigrate bug' });
}

export function assertSnapshotId(id: string): void {
  if (!isCheckpointId(id)) throw new TsmError('EINVAL_ARG', `invalid checkpoint id "${id.slice(0, 80)}"`, { fix: 'list them with tsmigrate store ls' });
}

/**
 * Opens the store's directory: undefined when it does not exist and `create` is false.
 * The default opens the trusted path given; the agent's resolves a path from the wire
 * beneath its configured store directories (agent/store-dirs.ts).
 */
export type StoreDirOpener = (create: boolean) => Promise<ConfinedDir | undefined>;

/**
 * A store directory on this host. Every file is root-only (0600 in 0700 directories).
 * Everything in it is reached through the directory's descriptor, one component at a
 * time, never through a link (util/confined-dir.ts): a link planted in a store is
 * refused, and nothing outside the store is read, written, chmod'ed or removed.
 */
export class LocalBackend implements StoreBackend {
  readonly location: string;
  private held: Lock | undefined;
  private root: ConfinedDir | undefined;
  private readonly opener: StoreDirOpener;
  constructor(readonly dir: string, label?: string, opener?: StoreDirOpener) {
    if (!path.isAbsolute(dir) || path.normalize(dir) !== dir.replace(/\/+$/, '') || dir.split('/').includes('..')) {
      throw new TsmError('EINVAL_ARG', `store path "${dir}" must be absolute and normalised`, { fix: 'give a path such as /srv/tsmigrate-store' });
    }
    this.location = label ?? dir;
    this.opener = opener ?? ((create) => openTrusted(dir, create));
  }

  /** where a chunk's object is (tests craft stores through it) */
  chunkFile(id: string): string {
    return path.join(this.dir, LocalBackend.chunkDirName(id), id);
  }

  /** The store's directory, which must exist. */
  private async top(): Promise<ConfinedDir> {
    if (this.root) return this.root;
    const d = await this.opener(false);
    if (!d) throw new TsmError('ENOENT_CHECKPOINT', `${this.location} is not a tsmigrate store (it does not exist)`, { fix: 'create it with tsmigrate checkpoint NAME --store ...' });
    this.root = d;
    return d;
  }

  /** `fn` with the store's subdirectories opened for it (never through a link), closed after. */
  private async scoped<T>(fn: (dirs: SubdirCache) => Promise<T>): Promise<T> {
    const dirs = new SubdirCache(await this.top());
    try {
      return await fn(dirs);
    } finally {
      await dirs.close();
    }
  }

  private static chunkDirName(id: string): string {
    assertChunkId(id);
    return `chunks/${id.slice(0, 2)}`;
  }
  private snapName(id: string, ext: 'meta' | 'refs'): string {
    assertSnapshotId(id);
    return `${id}.${ext}`;
  }
  private static async readChunk(dirs: SubdirCache, id: string): Promise<Buffer | undefined> {
    return (await dirs.get(LocalBackend.chunkDirName(id)))?.readFile(id);
  }

  async open(create: StoreInfo | null): Promise<StoreInfo | null> {
    const file = path.join(this.location, 'store.json');
    let d = this.root ?? (await this.opener(false));
    if (d) this.root = d;
    const text = d ? (await d.readFile('store.json'))?.toString('utf8') : undefined;
    if (text !== undefined) {
      let info: StoreInfo;
      try {
        info = JSON.parse(text) as StoreInfo;
      } catch {
        throw new TsmError('ECONFIG', `${file} is not valid JSON`, { fix: 'the store is damaged; restore store.json from a backup or use another store' });
      }
      return checkStoreInfo(info, this.location);
    }
    if (!create) return null;
    if (d && (await d.list()).length > 0) {
      throw new TsmError('EINVAL_ARG', `${this.location} is a non-empty directory that is not a tsmigrate store`, { fix: 'choose an empty or new directory' });
    }
    d ??= await this.opener(true);
    if (!d) throw new TsmError('EINTERNAL', `${this.location} could not be created`, { fix: 'report a tsmigrate bug' });
    this.root = d;
    await this.scoped(async (dirs) => {
      await dirs.must('chunks', true);
      await dirs.must('snapshots', true);
    });
    // only a directory made here or found empty, through its own descriptor
    await d.chmod(0o700);
    await d.writeFileAtomic('store.json', Buffer.from(`${JSON.stringify(create, null, 2)}\n`), { mode: 0o600, sync: true });
    await d.sync();
    return create;
  }

  async lock(wait: { timeoutMs: number }): Promise<void> {
    const until = Date.now() + wait.timeoutMs;
    const d = await this.top();
    for (;;) {
      try {
        this.held = await lockStoreDir(d, `store ${this.location}`);
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
    return this.scoped((dirs) => LocalBackend.has(dirs, ids));
  }

  private static has(dirs: SubdirCache, ids: string[]): Promise<boolean[]> {
    return Promise.all(ids.map(async (id) => (await dirs.get(LocalBackend.chunkDirName(id)))?.exists(id) ?? false));
  }

  async putChunks(objects: Array<{ id: string; obj: Buffer }>): Promise<{ written: number; bytes: number }> {
    return this.scoped(async (dirs) => {
      let written = 0;
      let bytes = 0;
      for (const { id, obj } of objects) {
        const d = await dirs.must(LocalBackend.chunkDirName(id), true);
        if (await d.exists(id)) continue;
        await d.writeFileAtomic(id, obj, { mode: 0o600 });
        written++;
        bytes += obj.length;
      }
      return { written, bytes };
    });
  }

  async getChunks(ids: string[]): Promise<Buffer[]> {
    return this.scoped((dirs) =>
      Promise.all(
        ids.map(async (id) => {
          const obj = await LocalBackend.readChunk(dirs, id);
          if (!obj) throw new TsmError('EINTEGRITY', `chunk ${id.slice(0, 12)}… is missing from ${this.location}`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
          const problem = checkObject(obj);
          if (problem) throw new TsmError('EINTEGRITY', `chunk ${id.slice(0, 12)}… in ${this.location} is corrupted: ${problem}`, { fix: 'use another checkpoint (tsmigrate store verify shows which are good)' });
          return obj;
        }),
      ),
    );
  }

  async listSnapshots(): Promise<string[]> {
    return this.scoped((dirs) => LocalBackend.listSnapshots(dirs));
  }

  private static async listSnapshots(dirs: SubdirCache): Promise<string[]> {
    const names = (await (await dirs.get('snapshots'))?.list()) ?? [];
    return names.filter((n) => n.endsWith('.meta')).map((n) => n.slice(0, -5)).filter(isCheckpointId).sort();
  }

  async getSnapshot(id: string): Promise<Buffer> {
    const name = this.snapName(id, 'meta');
    const meta = await this.scoped(async (dirs) => (await dirs.get('snapshots'))?.readFile(name));
    if (!meta) throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${id}" in ${this.location}`, { fix: `list them with tsmigrate store ls --store ${this.location}` });
    return meta;
  }

  async putSnapshot(id: string, meta: Buffer, refs: Buffer): Promise<void> {
    if (refs.length % 32 !== 0) throw new TsmError('EINVAL_ARG', 'snapshot refs must be whole 32-byte ids', { fix: 'report a tsmigrate bug' });
    const metaName = this.snapName(id, 'meta');
    const refsName = this.snapName(id, 'refs');
    await this.scoped(async (dirs) => {
      const snaps = await dirs.must('snapshots', true);
      if (await snaps.exists(metaName)) {
        throw new TsmError('EEXIST_CHECKPOINT', `checkpoint ${id} is already in ${this.location}`, { fix: 'use it as it is' });
      }
      // every chunk must be there and on disk before the snapshot that needs it
      const missing = (await LocalBackend.has(dirs, idsOf(refs))).filter((h) => !h).length;
      if (missing) throw new TsmError('EINTEGRITY', `${missing} chunks of checkpoint ${id} are missing from ${this.location}`, { fix: 'retry the checkpoint' });
      await execa('sync', ['-f', (await this.top()).self]);
      await snaps.writeFileAtomic(refsName, refs, { mode: 0o600, sync: true });
      await snaps.writeFileAtomic(metaName, meta, { mode: 0o600, sync: true });
      await snaps.sync();
    });
  }

  async getIndex(): Promise<Buffer | null> {
    return (await (await this.top()).readFile('index')) ?? null;
  }

  async putIndex(obj: Buffer): Promise<void> {
    const d = await this.top();
    await d.writeFileAtomic('index', obj, { mode: 0o600, sync: true });
    await d.sync();
  }

  async deleteSnapshot(id: string): Promise<void> {
    const metaName = this.snapName(id, 'meta');
    const refsName = this.snapName(id, 'refs');
    await this.scoped(async (dirs) => {
      const snaps = await dirs.get('snapshots');
      if (!snaps) return;
      await snaps.unlink(metaName);
      await snaps.sync();
      await snaps.unlink(refsName);
    });
  }

  private static async allChunkIds(dirs: SubdirCache): Promise<string[]> {
    const out: string[] = [];
    for (const d of (await (await dirs.get('chunks'))?.list()) ?? []) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await (await dirs.must(`chunks/${d}`)).list()) if (HEX64.test(f)) out.push(f);
    }
    return out;
  }

  private async refsOf(dirs: SubdirCache, id: string): Promise<Buffer | undefined> {
    return (await dirs.get('snapshots'))?.readFile(this.snapName(id, 'refs'));
  }

  private async referenced(dirs: SubdirCache): Promise<Set<string>> {
    const live = new Set<string>();
    for (const id of await LocalBackend.listSnapshots(dirs)) {
      for (const r of idsOf((await this.refsOf(dirs, id)) ?? Buffer.alloc(0))) live.add(r);
    }
    return live;
  }

  async verify(snapshot: string | null): Promise<VerifyReport> {
    return this.scoped(async (dirs) => {
      let ids: string[];
      if (snapshot) {
        const refs = await this.refsOf(dirs, snapshot);
        if (!refs) throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${snapshot}" in ${this.location}`, { fix: 'list them with tsmigrate store ls' });
        ids = idsOf(refs);
      } else {
        ids = await LocalBackend.allChunkIds(dirs);
      }
      const report: VerifyReport = { chunks: 0, bytes: 0, bad: [], missing: [] };
      if (!snapshot) {
        const have = new Set(ids);
        for (const r of await this.referenced(dirs)) if (!have.has(r)) report.missing.push(r);
      }
      for (const id of ids) {
        const obj = await LocalBackend.readChunk(dirs, id).catch((e: unknown) => {
          if (e instanceof TsmError && e.code === 'EFORBIDDEN') throw e;
          return undefined;
        });
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
    });
  }

  async collect(): Promise<{ chunks: number; bytes: number }> {
    return this.scoped(async (dirs) => {
      const live = await this.referenced(dirs);
      let chunks = 0;
      let bytes = 0;
      for (const id of await LocalBackend.allChunkIds(dirs)) {
        if (live.has(id)) continue;
        const d = await dirs.must(LocalBackend.chunkDirName(id));
        bytes += (await d.lstat(id))?.size ?? 0;
        await d.unlink(id);
        chunks++;
      }
      // refs whose meta is gone (a delete cut short), and temporary files of a write cut short
      const snaps = await dirs.get('snapshots');
      for (const n of (await snaps?.list()) ?? []) {
        if (n.includes('.tmp-')) await snaps!.unlink(n);
        else if (n.endsWith('.refs') && !(await snaps!.exists(`${n.slice(0, -5)}.meta`))) await snaps!.unlink(n);
      }
      return { chunks, bytes };
    });
  }

  async stats(): Promise<{ chunks: number; bytes: number; snapshots: number }> {
    return this.scoped(async (dirs) => {
      let chunks = 0;
      let bytes = 0;
      for (const id of await LocalBackend.allChunkIds(dirs)) {
        chunks++;
        bytes += (await (await dirs.must(LocalBackend.chunkDirName(id))).lstat(id))?.size ?? 0;
      }
      return { chunks, bytes, snapshots: (await LocalBackend.listSnapshots(dirs)).length };
    });
  }

  async close(): Promise<void> {
    await this.unlock();
    await this.root?.close();
    this.root = undefined;
  }
}

/** A store path the user gave on this host: links in it are followed (it is the user's own). */
async function openTrusted(dir: string, create: boolean): Promise<ConfinedDir | undefined> {
  try {
    return await ConfinedDir.open(dir, { create, mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !create) return undefined;
    if (code === 'ENOTDIR' || code === 'EEXIST') throw new TsmError('EINVAL_ARG', `store path ${dir} is not a directory`, { fix: 'choose another path' });
    throw e;
  }
}

/** 32-byte binary ids → hex. */
export function idsOf(refs: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i + 32 <= refs.length; i += 32) out.push(refs.subarray(i, i + 32).toString('hex'));
  return out;
}
