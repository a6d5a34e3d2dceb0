import { constants as C, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/**
 * A directory held open, and paths that resolve beneath it without following
 * a link at any component: `/proc/self/fd/N` is the open directory itself (the
 * kernel jumps to it, it does not look its name up again), then one name
 * opened with O_NOFOLLOW. A tree that changes while it is read (a running
 * container's upper layer, where a directory may be swapped for a link to
 * `/`) can then only show its own entries, never the host's: this is
 * openat(dirfd, name, O_NOFOLLOW) at every component.
 */
export class DirHandle {
  private constructor(private readonly fh: FileHandle) {}

  /** Open `dir` itself (a path the caller trusts, its last component not followed). */
  static async open(dir: string): Promise<DirHandle> {
    return new DirHandle(await fs.open(dir, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW));
  }

  /**
   * Open the subdirectory `name` (one component, as readdir gave it). Fails
   * with ELOOP or ENOTDIR when it is (now) a link or not a directory.
   */
  async openDir(name: string): Promise<DirHandle> {
    return new DirHandle(await fs.open(this.at(name), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW));
  }

  /** Open the entry `name` with `flags` and O_NOFOLLOW. */
  openFile(name: string, flags: number): Promise<FileHandle> {
    return fs.open(this.at(name), flags | C.O_NOFOLLOW);
  }

  /** The names in this directory. */
  names(): Promise<Buffer[]> {
    return fs.readdir(this.self(), { encoding: 'buffer' });
  }

  /** A path naming `name` here, for calls that do not follow a last link (lstat, readlink, l*xattr). */
  at(name: string): string {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
      throw new Error(`not one path component: ${JSON.stringify(name)}`);
    }
    return `/proc/self/fd/${this.fh.fd}/${name}`;
  }

  /** A path naming this directory (the same calls, on it). */
  self(): string {
    return `/proc/self/fd/${this.fh.fd}/.`;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

/** The entry is gone, or is no longer what was listed (a link or a file where a directory was). */
export function changedUnderneath(e: unknown): boolean {
  const c = (e as NodeJS.ErrnoException | undefined)?.code;
  return c === 'ENOENT' || c === 'ELOOP' || c === 'ENOTDIR';
}
