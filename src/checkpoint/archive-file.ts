import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { packTreeToFile, unpackFileToTree } from '../archive/pack.js';
import { TsmError } from '../errors/errors.js';
import { fsyncDir } from '../state/atomic.js';
import { parseManifest, type CheckpointManifest } from './manifest.js';
import { verifyBlobs, type CheckpointStore } from './store.js';

const ALLOWED = new Set(['manifest.json', 'criu.tar.zst', 'upper.tar.zst', 'dump.log']);

/** One .tar.zst file holding a whole checkpoint, to copy to another host. Verified before it is written. */
export async function exportCheckpoint(store: CheckpointStore, id: string, file: string): Promise<{ bytes: number; sha256: string }> {
  await store.assertVerified(id);
  const target = path.resolve(file);
  if (await fs.stat(target).then(() => true, () => false)) {
    throw new TsmError('EINVAL_ARG', `${target} already exists`, { fix: 'choose another file name or remove it first' });
  }
  const tmp = `${target}.tmp-${randomBytes(3).toString('hex')}`;
  try {
    const r = await packTreeToFile(store.path(id), tmp, { zstd: 1 });
    await fs.chmod(tmp, 0o600);
    await fs.rename(tmp, target);
    return { bytes: r.bytes, sha256: r.sha256 };
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** Import an exported checkpoint: unpacked safely into a temp dir, every hash verified, then moved into the store. */
export async function importCheckpoint(store: CheckpointStore, file: string): Promise<CheckpointManifest> {
  const src = path.resolve(file);
  await fs.stat(src).catch(() => {
    throw new TsmError('EINVAL_ARG', `no such file: ${src}`, { fix: 'give the path of a file made by tsmigrate checkpoint export' });
  });
  await fs.mkdir(store.dir, { recursive: true, mode: 0o700 });
  const tmp = await fs.mkdtemp(path.join(store.dir, '.import-'));
  try {
    await unpackFileToTree(src, tmp, { refuseDevices: true }).catch((e: Error) => {
      throw new TsmError('EINVAL_ARG', `${src} is not a checkpoint archive: ${e.message}`, { fix: 'give a file made by tsmigrate checkpoint export', cause: e });
    });
    for (const f of await fs.readdir(tmp)) {
      if (!ALLOWED.has(f)) throw new TsmError('EINVAL_ARG', `${src} holds an unexpected entry "${f}"`, { fix: 'give a file made by tsmigrate checkpoint export' });
    }
    const text = await fs.readFile(path.join(tmp, 'manifest.json'), 'utf8').catch(() => {
      throw new TsmError('EINVAL_ARG', `${src} has no manifest.json`, { fix: 'give a file made by tsmigrate checkpoint export' });
    });
    const m = parseManifest(text);
    const dst = store.path(m.id);
    if (await fs.stat(dst).then(() => true, () => false)) {
      throw new TsmError('EEXIST_CHECKPOINT', `checkpoint ${m.id} is already in the store`, { fix: `remove it first (tsmigrate checkpoint rm ${m.id}) or use it as it is` });
    }
    for (const f of await fs.readdir(tmp)) await fs.chmod(path.join(tmp, f), 0o600);
    // verify in place under its final name's sibling, then rename
    const staged = path.join(store.dir, `.tmp-${m.id}`);
    await fs.rename(tmp, staged);
    try {
      const problems = await verifyBlobs(staged, m);
      if (problems.length) {
        throw new TsmError('EINTEGRITY', `${src} is corrupted: ${problems.join('; ')}`, { fix: 'copy the file again from its source' });
      }
      await fs.rename(staged, dst);
      await fsyncDir(store.dir);
      return m;
    } catch (e) {
      await fs.rm(staged, { recursive: true, force: true });
      throw e;
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
