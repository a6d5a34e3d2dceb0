import { randomBytes } from 'node:crypto';
import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import { MiB, PRESETS } from '../archive/limits.js';
import { packTreeToFile, unpackFileToTree } from '../archive/pack.js';
import { TsmError } from '../errors/errors.js';
import { fsyncDir } from '../state/atomic.js';
import { importTempName, sweepCheckpointLeftovers } from './leftovers.js';
import type { CheckpointManifest } from './manifest.js';
import { readSignedManifest, verifyBlobs, type CheckpointStore } from './store.js';

/** One .tar.zst file holding a whole checkpoint, to copy to another host. Verified before it is written. */
export async function exportCheckpoint(store: CheckpointStore, id: string, file: string): Promise<{ bytes: number; sha256: string }> {
  await sweepCheckpointLeftovers(store.dir);
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

/** What an exported checkpoint holds at its top: regular files only, each at most this many bytes. */
const TOP_LEVEL: ReadonlyMap<string, number> = new Map([
  ['manifest.json', 1 * MiB],
  ['manifest.sig', 4096],
  ['dump.log', 256 * MiB],
  ['criu.tar.zst', PRESETS['checkpoint-archive'].tar.maxEntryBytes],
  ['upper.tar.zst', PRESETS['checkpoint-archive'].tar.maxEntryBytes],
]);

/**
 * Import an exported checkpoint: unpacked into a temp dir (regular files at
 * the top only, bounded while it streams, nothing followed), every hash
 * verified, then moved into the store. A refusal leaves nothing behind, and a
 * killed import's temp dir is swept by the next one.
 */
export async function importCheckpoint(store: CheckpointStore, file: string): Promise<CheckpointManifest> {
  const src = path.resolve(file);
  await fs.stat(src).catch(() => {
    throw new TsmError('EINVAL_ARG', `no such file: ${src}`, { fix: 'give the path of a file made by tsmigrate checkpoint export' });
  });
  await fs.mkdir(store.dir, { recursive: true, mode: 0o700 });
  await sweepCheckpointLeftovers(store.dir);
  const tmp = path.join(store.dir, importTempName(process.pid, randomBytes(6).toString('hex')));
  await fs.mkdir(tmp, { mode: 0o700 });
  try {
    const limits = PRESETS['checkpoint-archive'];
    await unpackFileToTree(src, tmp, { refuseDevices: true, only: TOP_LEVEL, limits: limits.tar, inflate: limits.inflate, what: `the archive ${src}` }).catch((e: Error) => {
      const fix = e instanceof TsmError && e.fix ? e.fix : 'give a file made by tsmigrate checkpoint export';
      throw new TsmError('EINVAL_ARG', `${src} is not a checkpoint archive: ${e.message}`, { fix, cause: e });
    });
    if (!(await fs.lstat(path.join(tmp, 'manifest.json')).then((s) => s.isFile(), () => false))) {
      throw new TsmError('EINVAL_ARG', `${src} has no manifest.json`, { fix: 'give a file made by tsmigrate checkpoint export' });
    }
    // signed by a trusted key, or refused before anything of it is used
    const m = await readSignedManifest(tmp, store.signing, `the checkpoint in ${src}`);
    if (!m.blobs.log && (await fs.stat(path.join(tmp, 'dump.log')).then(() => true, () => false))) {
      throw new TsmError('EINVAL_ARG', `${src} holds a dump.log its manifest does not list`, { fix: 'give a file made by tsmigrate checkpoint export' });
    }
    const dst = store.path(m.id);
    if (await fs.lstat(dst).then(() => true, () => false)) {
      throw new TsmError('EEXIST_CHECKPOINT', `checkpoint ${m.id} is already in the store`, { fix: `remove it first (tsmigrate checkpoint rm ${m.id}) or use it as it is` });
    }
    for (const f of await fs.readdir(tmp)) {
      const fh = await fs.open(path.join(tmp, f), C.O_RDONLY | C.O_NOFOLLOW);
      await fh.chmod(0o600).finally(() => fh.close());
    }
    const problems = await verifyBlobs(tmp, m);
    if (problems.length) {
      throw new TsmError('EINTEGRITY', `${src} is corrupted: ${problems.join('; ')}`, { fix: 'copy the file again from its source' });
    }
    await fs.rename(tmp, dst);
    await fsyncDir(store.dir);
    return m;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
