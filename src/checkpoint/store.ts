import { constants as C, promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { Signing } from '../sign/signing.js';
import type { StatePaths } from '../state/paths.js';
import { hashFile } from '../util/hash.js';
import { BLOB_NAMES, isCheckpointId, parseManifest, type CheckpointManifest } from './manifest.js';

export interface CheckpointSummary {
  id: string;
  container: string;
  createdAt: string;
  size: number;
  tag: string | null;
  frozenMs: number;
}

export const MANIFEST_FILE = 'manifest.json';
/** the signature over manifest.json's exact bytes (sign/signature.ts) */
export const SIGNATURE_FILE = 'manifest.sig';

/** The local checkpoint store: <root>/checkpoints/<id>/{manifest.json,manifest.sig,criu.tar.zst,upper.tar.zst,dump.log}. */
export class CheckpointStore {
  readonly dir: string;
  constructor(paths: StatePaths, readonly signing: Signing) {
    this.dir = path.join(paths.root, 'checkpoints');
  }

  path(id: string): string {
    if (!isCheckpointId(id)) {
      throw new TsmError('EINVAL_ARG', `invalid checkpoint id "${id}"`, { fix: 'list checkpoints with tsmigrate checkpoints' });
    }
    return path.join(this.dir, id);
  }

  async manifest(id: string): Promise<CheckpointManifest> {
    const text = await fs.readFile(path.join(this.path(id), 'manifest.json'), { encoding: 'utf8', flag: C.O_RDONLY | C.O_NOFOLLOW }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint "${id}"`, { fix: 'list checkpoints with tsmigrate checkpoints' });
      }
      throw e;
    });
    return parseManifest(text);
  }

  async list(container?: string): Promise<CheckpointSummary[]> {
    const entries = await fs.readdir(this.dir, { withFileTypes: true }).catch(() => []);
    const out: CheckpointSummary[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || e.name.startsWith('.') || !isCheckpointId(e.name)) continue;
      const m = await this.manifest(e.name).catch(() => undefined);
      if (!m || (container && m.container.name !== container)) continue;
      out.push({
        id: m.id,
        container: m.container.name,
        createdAt: m.createdAt,
        size: BLOB_NAMES.reduce((s, b) => s + m.blobs[b].size, 0),
        tag: m.tag,
        frozenMs: m.timings.frozenMs,
      });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** Check the signature, then every blob's size and sha256; returns the problems (empty: good). */
  async verify(id: string): Promise<string[]> {
    let m: CheckpointManifest;
    try {
      m = await readSignedManifest(this.path(id), this.signing, `checkpoint ${id}`);
    } catch (e) {
      if (e instanceof TsmError && (e.code === 'EUNTRUSTED' || e.code === 'EINTEGRITY')) return [e.oneLine()];
      throw e;
    }
    return verifyBlobs(this.path(id), m);
  }

  /** The manifest, once its signature (a trusted key, see sign/signing.ts) and every blob are checked. */
  async assertVerified(id: string): Promise<CheckpointManifest> {
    const m = await readSignedManifest(this.path(id), this.signing, `checkpoint ${id}`);
    const problems = await verifyBlobs(this.path(id), m);
    if (problems.length) {
      throw new TsmError('EINTEGRITY', `checkpoint ${id} is corrupted: ${problems.join('; ')}`, {
        fix: 'nothing was changed; restore another checkpoint (tsmigrate checkpoints)',
      });
    }
    return m;
  }

  async remove(id: string): Promise<void> {
    const dir = this.path(id);
    await this.manifest(id);
    // rename first so that a crash never leaves a half-deleted checkpoint that lists
    const trash = path.join(this.dir, `.rm-${id}-${process.pid}`);
    await fs.rename(dir, trash);
    await fs.rm(trash, { recursive: true, force: true });
  }
}

/**
 * The manifest of the checkpoint in `dir`, read as bytes, its signature checked
 * over exactly those bytes against the trusted keys, and only then parsed.
 */
export async function readSignedManifest(dir: string, signing: Signing, what: string): Promise<CheckpointManifest> {
  const bytes = await fs.readFile(path.join(dir, MANIFEST_FILE), { flag: C.O_RDONLY | C.O_NOFOLLOW }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new TsmError('ENOENT_CHECKPOINT', `${what} has no ${MANIFEST_FILE}`, { fix: 'list checkpoints with tsmigrate checkpoints' });
    throw e;
  });
  const sigText = await fs.readFile(path.join(dir, SIGNATURE_FILE), { encoding: 'utf8', flag: C.O_RDONLY | C.O_NOFOLLOW }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  let sig: unknown = null;
  if (sigText !== undefined) {
    try {
      sig = JSON.parse(sigText.slice(0, 4096));
    } catch {
      sig = 'not JSON';
    }
  }
  await signing.verify('checkpoint', bytes, sig, what);
  return parseManifest(bytes);
}

/** Check every blob of the checkpoint in `dir` against manifest `m`. */
export async function verifyBlobs(dir: string, m: CheckpointManifest): Promise<string[]> {
  const problems: string[] = [];
  for (const b of [...BLOB_NAMES, ...(m.blobs.log ? (['log'] as const) : [])]) {
    const info = m.blobs[b]!;
    // never through a link: a blob that is one is reported as such, nothing of its target is read or shown
    const got = await hashFile(path.join(dir, info.file), { noFollow: true }).catch((e: NodeJS.ErrnoException) => e.code ?? 'EIO');
    if (typeof got === 'string') problems.push(`${info.file} ${blobProblem(got)}`);
    else if (got.size !== info.size) problems.push(`${info.file} has ${got.size} bytes, the manifest says ${info.size}`);
    else if (got.sha256 !== info.sha256) problems.push(`${info.file} has sha256 ${got.sha256.slice(0, 12)}…, the manifest says ${info.sha256.slice(0, 12)}…`);
  }
  return problems;
}

function blobProblem(code: string): string {
  if (code === 'ENOENT') return 'is missing';
  if (code === 'ELOOP') return 'is a symbolic link, not a file';
  if (code === 'ENOTREG') return 'is not a regular file';
  return `cannot be read (${code})`;
}
