import { randomBytes } from 'node:crypto';
import { constants, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

/**
 * A directory held open by its descriptor, and everything below it reached
 * through that descriptor one component at a time without following links:
 * what openat(dirfd, name, O_NOFOLLOW) gives C. Node has no openat; a path
 * `/proc/PID/fd/N/name` is the same lookup (the kernel jumps to the directory
 * the descriptor holds, wherever it has been moved, then looks `name` up in
 * it), and a name is one component, never `..`. A symbolic link met on the way
 * is refused (ELOOP from O_NOFOLLOW), never followed.
 */
export class ConfinedDir {
  private constructor(
    private readonly fh: FileHandle,
    /** for messages: the path the caller knows it by */
    readonly label: string,
  ) {}

  /** A directory named by a trusted path (from the host's config or its own state): links in it are followed. */
  static async open(dir: string, o: { create?: boolean; mode?: number } = {}): Promise<ConfinedDir> {
    if (o.create) await fs.mkdir(dir, { recursive: true, mode: o.mode ?? 0o700 });
    return new ConfinedDir(await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY), dir);
  }

  /**
   * `rel` (from the wire) beneath a trusted `root`: every component opened
   * without following links, created (mode) where missing when `create`.
   */
  static async beneath(root: string, rel: string, o: { create?: boolean; mode?: number } = {}): Promise<ConfinedDir> {
    let cur = await ConfinedDir.open(root, { create: o.create ?? false, mode: o.mode ?? 0o700 });
    try {
      for (const part of splitRelative(rel)) {
        const next = await cur.sub(part, o);
        await cur.close();
        cur = next;
      }
      return cur;
    } catch (e) {
      await cur.close();
      throw e;
    }
  }

  get fd(): number {
    return this.fh.fd;
  }

  /** The name's path through the descriptor, for calls that never follow a last component (mkdir, rename, unlink, rmdir, lstat). */
  at(name: string): string {
    checkName(name, this.label);
    return `/proc/${process.pid}/fd/${this.fh.fd}/${name}`;
  }

  /** The directory itself through the descriptor (for readdir, statfs, a child's argv). */
  get self(): string {
    return `/proc/${process.pid}/fd/${this.fh.fd}`;
  }

  /** A subdirectory, opened without following a link; created (mode) when missing and `create`. */
  async sub(name: string, o: { create?: boolean; mode?: number } = {}): Promise<ConfinedDir> {
    const p = this.at(name);
    if (o.create) {
      await fs.mkdir(p, { mode: o.mode ?? 0o700 }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    }
    const fh = await fs.open(p, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch(async (e: NodeJS.ErrnoException) => {
      // O_DIRECTORY on a link says ENOTDIR: tell a link from a file
      const link = e.code === 'ENOTDIR' && (await fs.lstat(p).catch(() => undefined))?.isSymbolicLink();
      throw this.refusal(link ? Object.assign(e, { code: 'ELOOP' }) : e, name);
    });
    return new ConfinedDir(fh, path.join(this.label, name));
  }

  /** A regular file's bytes; undefined when it does not exist; a link or anything but a file is refused. */
  async readFile(name: string): Promise<Buffer | undefined> {
    let fh: FileHandle;
    try {
      fh = await fs.open(this.at(name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.refusal(e as NodeJS.ErrnoException, name);
    }
    try {
      if (!(await fh.stat()).isFile()) throw this.notFile(name);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  /** Write `data` to a new temporary file here, then rename it over `name` (never through a link: rename replaces the name itself). */
  async writeFileAtomic(name: string, data: Uint8Array, o: { mode?: number; sync?: boolean } = {}): Promise<void> {
    const tmp = `${name}.tmp-${randomBytes(3).toString('hex')}`;
    const fh = await fs.open(this.at(tmp), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, o.mode ?? 0o600);
    try {
      await fh.writeFile(data);
      if (o.sync) await fh.sync();
    } catch (e) {
      await fh.close();
      await fs.unlink(this.at(tmp)).catch(() => undefined);
      throw e;
    }
    await fh.close();
    await fs.rename(this.at(tmp), this.at(name));
  }

  /** A new file (never an existing one, never through a link). */
  async createFile(name: string, data: Uint8Array, mode = 0o600): Promise<void> {
    const fh = await fs.open(this.at(name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
  }

  async lstat(name: string): Promise<Stats | undefined> {
    return fs.lstat(this.at(name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
  }

  async exists(name: string): Promise<boolean> {
    return (await this.lstat(name)) !== undefined;
  }

  async list(): Promise<string[]> {
    return fs.readdir(this.self);
  }

  /** Remove a name that is not a directory (a link is removed itself); absent is fine. */
  async unlink(name: string): Promise<void> {
    await fs.unlink(this.at(name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  /** Remove an empty directory; absent is fine; never recursive. */
  async rmdir(name: string): Promise<void> {
    await fs.rmdir(this.at(name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }

  async stat(): Promise<Stats> {
    return this.fh.stat();
  }

  async chmod(mode: number): Promise<void> {
    await this.fh.chmod(mode);
  }

  /** fsync the directory (its entries are durable) */
  async sync(): Promise<void> {
    await this.fh.sync();
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }

  private refusal(e: NodeJS.ErrnoException, name: string): Error {
    if (e.code === 'ELOOP') {
      return new TsmError('EFORBIDDEN', `${path.join(this.label, name)} is a symbolic link: tsmigrate does not follow links here`, {
        fix: 'remove the link; nothing outside the directory is touched through it',
      });
    }
    if (e.code === 'ENOTDIR') return new TsmError('EFORBIDDEN', `${path.join(this.label, name)} is not a directory`, { fix: 'remove or rename it' });
    return e;
  }

  private notFile(name: string): TsmError {
    return new TsmError('EFORBIDDEN', `${path.join(this.label, name)} is not a regular file`, { fix: 'remove it' });
  }
}

/** One path component: not empty, not `.` or `..`, no `/` or NUL. */
export function checkName(name: string, where = 'a directory'): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || Buffer.byteLength(name) > 255) {
    throw new TsmError('EFORBIDDEN', `"${name.slice(0, 80)}" is not a name inside ${where}`, { fix: 'give a plain file name (no "/", "..", or NUL)' });
  }
  return name;
}

/** The components of a relative path; `..`, `.`, empty components and absolute paths are refused. */
export function splitRelative(rel: string): string[] {
  if (rel === '') return [];
  if (rel.startsWith('/')) throw new TsmError('EFORBIDDEN', `"${rel.slice(0, 80)}" is absolute, not relative`, { fix: 'give a path beneath the directory' });
  return rel.split('/').map((p) => checkName(p, `a path beneath a directory ("${rel.slice(0, 80)}")`));
}

/**
 * Subdirectories of one ConfinedDir opened for the length of one operation
 * (each once, however many calls ask at the same time), then closed: a
 * directory swapped for a link between operations is seen by the next one.
 */
export class SubdirCache {
  private readonly dirs = new Map<string, Promise<ConfinedDir | undefined>>();
  constructor(private readonly top: ConfinedDir) {}

  /** `a/b` beneath the top, each component without following links; undefined when missing (and not `create`). */
  get(rel: string, create = false): Promise<ConfinedDir | undefined> {
    const have = this.dirs.get(rel);
    if (have && !create) return have;
    const p = (async () => {
      const had = have ? await have : undefined;
      if (had) return had;
      const parts = splitRelative(rel);
      const parent = parts.length === 1 ? this.top : await this.get(parts.slice(0, -1).join('/'), create);
      if (!parent) return undefined;
      return parent.sub(parts[parts.length - 1]!, { create, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' && !create) return undefined;
        throw e;
      });
    })();
    this.dirs.set(rel, p);
    return p;
  }

  /** like get, but the directory must be there (or be made) */
  async must(rel: string, create = false): Promise<ConfinedDir> {
    const d = await this.get(rel, create);
    if (!d) throw new TsmError('EBAD_STATE', `${path.join(this.top.label, rel)} is missing`, { fix: 'the directory changed while tsmigrate used it; retry' });
    return d;
  }

  async close(): Promise<void> {
    for (const p of this.dirs.values()) await (await p.catch(() => undefined))?.close();
    this.dirs.clear();
  }
}
