/**
 * The image store: read-only root filesystems identified by a content digest.
 *
 *   <root>/images/names.json            { "<name>": "sha256:<hex>", ... }
 *   <root>/images/<hex>/image.json      ImageMeta
 *   <root>/images/<hex>/rootfs/         the tree
 *   <root>/images/.tmp-<pid>-<rand>/    an import in progress (removed on failure)
 *
 * Images are read-only by convention: nothing writes into a rootfs after import,
 * and containers only ever mount it as an overlayfs lowerdir. (No `chmod -R a-w`:
 * it would change the modes the digest covers and root ignores it anyway.)
 * The images directory and each digest directory are 0700 so unprivileged
 * users cannot reach set-uid binaries inside image trees.
 *
 * Changes to names.json (and renames into place) happen under the image-store
 * lock; copying and hashing a source happen outside it.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { PRESETS } from '../archive/limits.js';
import { extractTar } from '../archive/safe-extract.js';
import { TsmError, isTsmError } from '../errors/errors.js';
import { fsyncDir, readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import type { StatePaths } from '../state/paths.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { validateName } from '../util/name.js';
import { digestTree, typeChar, walkTree } from './digest.js';
import { openTarFile, type Compression } from './source.js';

export interface ImageSource {
  type: 'directory' | 'tar';
  /** Absolute path given at import. */
  path: string;
  /** For tar sources. */
  compression?: Compression;
}

/** Contents of <root>/images/<hex>/image.json. */
export interface ImageMeta {
  /** The name it was first imported as (other names may point at it too). */
  name: string;
  digest: string;
  size: number;
  files: number;
  importedAt: string;
  source: ImageSource;
}

export interface ImageRecord {
  name: string;
  /** 'sha256:<64 hex>' */
  digest: string;
  /** Absolute path of the read-only tree (use only as an overlay lowerdir). */
  rootfs: string;
  size: number;
}

export interface ImageInfo extends ImageRecord {
  /** First 12 hex digits of the digest. */
  id: string;
  files: number;
  importedAt: string;
  source: ImageSource;
}

export interface ImportResult extends ImageInfo {
  /** True when an image with the same content was already stored: only the name was added. */
  reused: boolean;
  /** Entries of the source that were not stored (device nodes, sockets). */
  skipped: string[];
}

/** Names of the containers using the image with this digest (empty: unused). */
export type ImageInUse = (digest: string) => string[] | Promise<string[]>;

const HEX64 = /^[0-9a-f]{64}$/;
const UNKNOWN_FIX = 'list images with tsmigrate image ls, or import one with tsmigrate image import NAME DIR|TAR';

export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

export class ImageStore {
  constructor(
    private readonly paths: StatePaths,
    private readonly log: Logger = silentLogger,
  ) {}

  private get namesFile(): string {
    return path.join(this.paths.images, 'names.json');
  }

  private get lockDir(): string {
    return path.join(this.paths.locks, 'images');
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    return withLock(this.lockDir, 'the image store', fn);
  }

  private async readNames(): Promise<Record<string, string>> {
    const v = await readJsonIfExists<unknown>(this.namesFile).catch((e: unknown) => {
      throw new TsmError('EIO', `cannot read the image index ${this.namesFile}: ${(e as Error).message}`, {
        fix: 'fix or remove that file (images stay on disk under its directory)',
        cause: e,
      });
    });
    if (v === undefined) return Object.create(null) as Record<string, string>;
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((d) => typeof d === 'string')) {
      throw new TsmError('EIO', `the image index ${this.namesFile} is corrupt`, {
        fix: 'fix or remove that file (images stay on disk under its directory)',
      });
    }
    // Null prototype: names such as "constructor" are valid image names.
    return Object.assign(Object.create(null) as Record<string, string>, v);
  }

  private async writeNames(names: Record<string, string>): Promise<void> {
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(names).sort()) sorted[k] = names[k]!;
    await writeJsonAtomic(this.namesFile, sorted);
  }

  private async readMeta(digest: string): Promise<ImageMeta | undefined> {
    return readJsonIfExists<ImageMeta>(path.join(this.paths.image(digest), 'image.json'));
  }

  private info(name: string, meta: ImageMeta): ImageInfo {
    return {
      name,
      digest: meta.digest,
      rootfs: path.join(this.paths.image(meta.digest), 'rootfs'),
      size: meta.size,
      id: shortId(meta.digest),
      files: meta.files,
      importedAt: meta.importedAt,
      source: meta.source,
    };
  }

  private async ensureDirs(): Promise<void> {
    await fs.mkdir(this.paths.images, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.paths.locks, { recursive: true, mode: 0o700 });
  }

  // -------------------------------------------------------------------------
  // import

  /**
   * Import SRC (a rootfs directory, or a plain/gzip/zstd tar file) as NAME.
   * Either the image is complete and named, or nothing is left behind.
   */
  async importImage(name: string, src: string, opts: { signal?: AbortSignal } = {}): Promise<ImportResult> {
    validateName('image', name);
    const srcAbs = path.resolve(src);
    const st = await fs.stat(srcAbs).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') {
        throw new TsmError('ENOENT_IMAGE', `image source ${srcAbs} does not exist`, {
          fix: 'give an existing rootfs directory or tar file (e.g. from docker export)',
        });
      }
      throw new TsmError('EIO', `cannot read image source ${srcAbs}: ${e.message}`, { cause: e });
    });
    if (!st.isDirectory() && !st.isFile()) {
      throw new TsmError('EINVAL_ARG', `image source ${srcAbs} is neither a directory nor a file`, {
        fix: 'give a rootfs directory or a tar file (e.g. from docker export)',
      });
    }
    await this.ensureDirs();
    if ((await this.readNames())[name] !== undefined) throw existsError(name);
    await this.sweepTemps();

    const tmp = path.join(this.paths.images, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    let placed: string | undefined;
    try {
      await fs.mkdir(tmp, { mode: 0o700 });
      const rootfs = path.join(tmp, 'rootfs');
      await fs.mkdir(rootfs);
      await fs.chmod(rootfs, 0o755);
      let source: ImageSource;
      let skipped: string[];
      if (st.isDirectory()) {
        await this.checkNotInsideSource(srcAbs);
        this.log.info(`copying ${srcAbs}`);
        await copyTree(srcAbs, rootfs, opts.signal);
        skipped = await removeSpecialFiles(rootfs);
        if (skipped.length > 0) {
          const eg = skipped.slice(0, 3).map((s) => JSON.stringify(s)).join(', ');
          this.log.warn(`skipped ${skipped.length} device node(s)/socket(s) in ${srcAbs} (e.g. ${eg}): a rootfs gets its /dev from the runtime`);
        }
        source = { type: 'directory', path: srcAbs };
      } else {
        const { stream, compression } = await openTarFile(srcAbs);
        this.log.info(`extracting ${srcAbs} (${compression === 'none' ? 'tar' : `${compression} tar`})`);
        const res = await extractTar(stream, rootfs, {
          allowDevices: false,
          allowWhiteouts: false,
          preserveOwner: true,
          limits: PRESETS.rootfs.tar,
          what: `the image ${srcAbs}`,
          onWarning: (m) => this.log.warn(m),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        skipped = res.skipped;
        source = { type: 'tar', path: srcAbs, compression };
      }

      this.log.info('computing the content digest');
      const d = await digestTree(rootfs);
      const meta: ImageMeta = {
        name,
        digest: d.digest,
        size: d.size,
        files: d.files,
        importedAt: new Date().toISOString(),
        source,
      };
      await writeJsonAtomic(path.join(tmp, 'image.json'), meta);
      await syncFs(rootfs);

      return await this.lock(async () => {
        const names = await this.readNames();
        if (names[name] !== undefined) throw existsError(name);
        const final = this.paths.image(d.digest);
        const existing = await this.readMeta(d.digest);
        let reused = false;
        let finalMeta = meta;
        if (existing !== undefined) {
          reused = true;
          finalMeta = existing;
          await fs.rm(tmp, { recursive: true, force: true });
        } else {
          // A digest directory without image.json is a leftover: replace it.
          await fs.rm(final, { recursive: true, force: true });
          await fs.rename(tmp, final);
          placed = final;
          await fsyncDir(this.paths.images);
        }
        names[name] = d.digest;
        await this.writeNames(names);
        placed = undefined;
        this.log.info(`imported ${name} as ${d.digest}${reused ? ' (same content as an existing image)' : ''}`);
        return { ...this.info(name, finalMeta), reused, skipped };
      });
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      if (placed !== undefined) await fs.rm(placed, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
  }

  /** Refuse to copy a directory that contains the state root (it would copy itself). */
  private async checkNotInsideSource(srcAbs: string): Promise<void> {
    const real = await fs.realpath(srcAbs);
    const images = await fs.realpath(this.paths.images);
    const rel = path.relative(real, images);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) {
      throw new TsmError('EINVAL_ARG', `image source ${srcAbs} contains the image store ${this.paths.images}`, {
        fix: 'import a directory that holds only the root filesystem',
      });
    }
  }

  /** Remove temp dirs of imports/removals whose process is gone. */
  private async sweepTemps(): Promise<void> {
    const entries = await fs.readdir(this.paths.images).catch(() => [] as string[]);
    for (const e of entries) {
      const m = /^\.(?:tmp|rm)-(\d+)-[0-9a-f]+$/.exec(e);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      this.log.debug(`removing leftover ${e}`);
      await fs.rm(path.join(this.paths.images, e), { recursive: true, force: true }).catch(() => undefined);
    }
  }

  // -------------------------------------------------------------------------
  // list / resolve

  /** Every name, sorted, with its image's metadata. */
  async listImages(): Promise<ImageInfo[]> {
    const names = await this.readNames();
    const out: ImageInfo[] = [];
    const cache = new Map<string, ImageMeta | undefined>();
    for (const name of Object.keys(names).sort()) {
      const digest = names[name]!;
      if (!cache.has(digest)) cache.set(digest, await this.readMeta(digest).catch(() => undefined));
      const meta = cache.get(digest);
      if (meta === undefined) {
        this.log.warn(`image ${name}: ${this.paths.image(digest)}/image.json is missing or unreadable`);
        continue;
      }
      out.push(this.info(name, meta));
    }
    return out;
  }

  /**
   * Find an image by name, by full 'sha256:<hex>', or by a unique hex prefix
   * of at least 12 characters (optionally with 'sha256:').
   */
  async resolveImage(ref: string): Promise<ImageInfo> {
    const names = await this.readNames();
    const byName = names[ref];
    if (byName !== undefined) {
      const meta = await this.readMeta(byName);
      if (meta === undefined) {
        throw new TsmError('EIO', `image ${ref} is damaged: ${this.paths.image(byName)}/image.json is missing`, {
          fix: `remove it with tsmigrate image rm ${ref} and import it again`,
        });
      }
      return this.info(ref, meta);
    }
    const m = /^(?:sha256:)?([0-9a-f]{12,64})$/.exec(ref);
    if (m) {
      const prefix = m[1]!;
      const candidates = new Set<string>();
      for (const d of Object.values(names)) candidates.add(d.replace(/^sha256:/, ''));
      for (const e of await fs.readdir(this.paths.images).catch(() => [] as string[])) if (HEX64.test(e)) candidates.add(e);
      const matches = [...candidates].filter((hex) => hex.startsWith(prefix));
      if (matches.length > 1) {
        throw new TsmError('EINVAL_ARG', `image reference "${ref}" is ambiguous: it matches ${matches.length} images`, {
          fix: 'give more digits of the digest, or the image name',
        });
      }
      const hex = matches[0];
      if (hex !== undefined) {
        const meta = await this.readMeta(hex);
        if (meta !== undefined) {
          const digest = `sha256:${hex}`;
          const name = Object.keys(names).sort().find((n) => names[n] === digest) ?? meta.name;
          return this.info(name, meta);
        }
      }
    }
    throw new TsmError('ENOENT_IMAGE', `unknown image ${JSON.stringify(ref)}`, { fix: UNKNOWN_FIX });
  }

  // -------------------------------------------------------------------------
  // remove

  /**
   * Remove the name NAME. The content goes too when no other name points at
   * it; that is refused while `isImageInUse` reports containers using it.
   */
  async removeImage(name: string, isImageInUse: ImageInUse): Promise<{ name: string; digest: string; removedContent: boolean }> {
    validateName('image', name);
    await this.ensureDirs();
    return this.lock(async () => {
      const names = await this.readNames();
      const digest = names[name];
      if (digest === undefined) throw new TsmError('ENOENT_IMAGE', `unknown image "${name}"`, { fix: UNKNOWN_FIX });
      const others = Object.keys(names).filter((n) => n !== name && names[n] === digest);
      const last = others.length === 0;
      if (last) {
        const users = [...(await isImageInUse(digest))].sort();
        if (users.length > 0) {
          throw new TsmError('EIMAGE_IN_USE', `image ${name} is used by container(s) ${users.join(', ')}`, {
            fix: 'remove those containers first (tsmigrate rm NAME)',
          });
        }
      }
      delete names[name];
      await this.writeNames(names);
      if (last) {
        const dir = this.paths.image(digest);
        const trash = path.join(this.paths.images, `.rm-${process.pid}-${randomBytes(6).toString('hex')}`);
        try {
          await fs.rename(dir, trash);
          await fsyncDir(this.paths.images);
          await fs.rm(trash, { recursive: true, force: true });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
            this.log.warn(`image ${name} was removed but its files could not be deleted: ${(e as Error).message}`);
          }
        }
      }
      this.log.info(`removed image ${name}${last ? '' : ` (content kept: still named ${others.join(', ')})`}`);
      return { name, digest, removedContent: last };
    });
  }
}

function existsError(name: string): TsmError {
  return new TsmError('EEXIST_IMAGE', `image "${name}" already exists`, {
    fix: `remove it first with tsmigrate image rm ${name}, or choose another name`,
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** cp -a SRC/. DST/ (reflinks when the filesystem can). */
async function copyTree(src: string, dst: string, signal?: AbortSignal): Promise<void> {
  try {
    await execa('cp', ['-a', '--reflink=auto', '--', `${src}/.`, `${dst}/`], {
      stdin: 'ignore',
      ...(signal ? { cancelSignal: signal } : {}),
    });
  } catch (e) {
    if (isTsmError(e)) throw e;
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim();
    const first = stderr.split('\n')[0] || (e as Error).message.split('\n')[0] || 'cp failed';
    throw new TsmError('EIO', `cannot copy ${src}: ${first}`, {
      fix: 'check the source is readable and there is enough free space',
      cause: e,
    });
  }
}

/**
 * Remove device nodes and sockets from a copied tree: a rootfs gets its /dev
 * from the runtime, and tar sources skip them too (so both import methods
 * store — and digest — the same tree). Returns their relative paths.
 */
async function removeSpecialFiles(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const e of await walkTree(root)) {
    const t = typeChar(e.st);
    if (t === 'c' || t === 'b' || t === 's') {
      await fs.unlink(e.abs);
      removed.push(e.rel.toString());
    }
  }
  return removed;
}

/** Flush the new tree to disk before it becomes visible (best effort). */
async function syncFs(dir: string): Promise<void> {
  await execa('sync', ['-f', dir], { stdin: 'ignore' }).catch(() => undefined);
}

// ---------------------------------------------------------------------------
// function forms (same behaviour as the ImageStore methods)

export function importImage(
  paths: StatePaths,
  name: string,
  src: string,
  opts: { signal?: AbortSignal; log?: Logger } = {},
): Promise<ImportResult> {
  return new ImageStore(paths, opts.log).importImage(name, src, opts.signal ? { signal: opts.signal } : {});
}

export function listImages(paths: StatePaths, log?: Logger): Promise<ImageInfo[]> {
  return new ImageStore(paths, log).listImages();
}

export function resolveImage(paths: StatePaths, ref: string, log?: Logger): Promise<ImageInfo> {
  return new ImageStore(paths, log).resolveImage(ref);
}

export function removeImage(
  paths: StatePaths,
  name: string,
  isImageInUse: ImageInUse,
  log?: Logger,
): Promise<{ name: string; digest: string; removedContent: boolean }> {
  return new ImageStore(paths, log).removeImage(name, isImageInUse);
}
