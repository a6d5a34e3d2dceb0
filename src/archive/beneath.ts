/**
 * A directory tree written through directory descriptors: the root is opened
 * once (not followed if it is a link), and every path below it is resolved by
 * openat2 with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS, so no symlink, "..",
 * absolute path or magic link, whoever put it there and whenever, can take a
 * write outside the root. Entries are created with the *at calls on one name
 * inside a parent opened that way.
 */
import { closeSync, constants as C, fchmod, fchown, ftruncate, openSync, write } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { promisify } from 'node:util';
import * as native from '../native/native.js';

const { RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS, O_PATH } = native.resolve;
const RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

export type Kind = 'dir' | 'file' | 'symlink' | 'other';

const writeAsync = promisify(write);
const ftruncateAsync = promisify(ftruncate);
const fchownAsync = promisify(fchown);
const fchmodAsync = promisify(fchmod);

/** An open parent directory and one name in it. */
export interface At {
  readonly fd: number;
  readonly name: string;
  /** a path naming the entry through the parent's descriptor (for calls that take a path and do not follow the last component) */
  readonly procPath: string;
}

export class DirTree {
  private constructor(
    readonly fd: number,
    readonly path: string,
  ) {}

  /** The existing directory `dir` (refused when it is a symlink). */
  static open(dir: string): DirTree {
    return new DirTree(openSync(dir, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW), dir);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** openat2 of `rel` ('' is the root) beneath the root; the caller closes the fd. */
  open(rel: string, flags: number, mode = 0): number {
    return native.openat2(this.fd, rel === '' ? '.' : rel, flags, mode, RESOLVE);
  }

  /** An O_PATH descriptor of the directory `rel`; throws ELOOP when a component is a symlink, ENOTDIR when not a directory. */
  dirPath(rel: string): number {
    return this.open(rel, O_PATH | C.O_DIRECTORY);
  }

  /** Run `fn` with `parts`' parent directory open (O_PATH) and its last name. */
  withParent<T>(parts: readonly string[], fn: (at: At) => T): T {
    const name = parts[parts.length - 1];
    if (name === undefined) throw new Error('internal: no name');
    const fd = this.dirPath(parts.slice(0, -1).join('/'));
    try {
      return fn({ fd, name, procPath: `/proc/self/fd/${fd}/${name}` });
    } finally {
      closeSync(fd);
    }
  }
}

/** What `name` in the directory `fd` is (not followed), or null when absent. */
export function kindAt(fd: number, name: string): Kind | null {
  const mode = native.lstatat(fd, name);
  if (mode === null) return null;
  switch (mode & native.constants.S_IFMT) {
    case native.constants.S_IFDIR:
      return 'dir';
    case native.constants.S_IFREG:
      return 'file';
    case native.constants.S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

/** Create a regular file (never an existing one, never through a link); its fd, opened for writing. */
export function createFileAt(at: At, mode: number): number {
  return native.openat2(at.fd, at.name, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode, RESOLVE);
}

/** A raw fd seen as the part of a FileHandle that sparse.ts writes through. */
export function fdSink(fd: number) {
  return {
    write: (buf: Buffer, off: number, len: number, pos: number) => writeAsync(fd, buf, off, len, pos),
    truncate: (len: number) => ftruncateAsync(fd, len),
    chown: (uid: number, gid: number) => fchownAsync(fd, uid, gid),
    chmod: (mode: number) => fchmodAsync(fd, mode),
  };
}

/** chmod of the node `name` (a fifo or device just made, not a link) through an O_PATH descriptor of it. */
export function chmodNodeAt(at: At, mode: number): Promise<void> {
  const fd = native.openat2(at.fd, at.name, O_PATH | C.O_NOFOLLOW, 0, RESOLVE);
  // chmod through the magic link of an O_PATH fd acts on that very inode
  return chmod(`/proc/self/fd/${fd}`, mode).finally(() => closeSync(fd));
}
