/**
 * File locks a move carries (CRIU --file-locks), and the ones it must refuse
 * before the freeze. Pure: facts in (what /proc/PID/fdinfo says each of the
 * container's descriptors holds, file-locks-read.ts), a plan out.
 *
 * What CRIU 4.2 carries, read in its criu/file-lock.c and tried on this
 * kernel (a checkpoint and a restore, and a move): flock, POSIX (fcntl) and
 * OFD locks, read and write leases, a lease being broken, locks on deleted
 * files, pipes and device nodes. On kernels that list locks in fdinfo (4.1+)
 * CRIU finds them there whether or not --file-locks is given, so passing it
 * always costs nothing; without it a single lock fails the dump ("Some file
 * locks are hold by dumping tasks").
 *
 * What it cannot carry, refused here with the reason: a kind of lock it does
 * not know (its parser fails the whole dump on anything but POSIX, FLOCK,
 * OFDLCK and LEASE: an NFS server's DELEG, a kind a newer kernel adds); and a
 * lock on a file the container has open that is held through a descriptor no
 * process of the container has (a process outside it locked the container's
 * file, or the descriptor is in flight in a socket): CRIU sees only the
 * container's descriptors, so on the peer the lock would be gone and whoever
 * in the container waits for it or respects it would go on without it.
 */

/** One `lock:` line of /proc/PID/fdinfo/FD, and where it was seen. */
export interface HeldLock {
  pid: number;
  fd: number;
  /** POSIX, FLOCK, OFDLCK, LEASE, DELEG, ... */
  kind: string;
  /** ADVISORY (locks), ACTIVE, BREAKING, BREAKER (leases) */
  state: string;
  /** READ, WRITE, UNLCK, RW */
  type: string;
  /** "MAJ:MIN:INODE" of the file */
  file: string;
  start: number;
  end: string;
  /** the pid /proc shows for the lock: a POSIX lock's owner, the process that took an flock, -1 for OFD */
  ownerPid: number;
  /** readlink of /proc/PID/fd/FD, for messages */
  path: string;
}

const LINE = /^(?:lock:\s+)?\d+:\s*(->\s*)?(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+([0-9a-fA-F]+:[0-9a-fA-F]+:\d+)\s+(\d+)\s+(\S+)/;

/** The locks an fdinfo file lists (kernels since 4.1 add a `lock:` line per lock held through the descriptor). */
export function parseFdinfoLocks(text: string, at: { pid: number; fd: number; path: string }): HeldLock[] {
  const out: HeldLock[] = [];
  for (const line of text.split('\n')) {
    const m = line.startsWith('lock:') ? LINE.exec(line) : null;
    if (m) out.push({ ...at, ...fields(m) });
  }
  return out;
}

function fields(m: RegExpExecArray): Omit<HeldLock, 'pid' | 'fd' | 'path'> {
  return { kind: m[2]!, state: m[3]!, type: m[4]!, ownerPid: Number(m[5]), file: m[6]!, start: Number(m[7]), end: m[8]! };
}

/** A line of /proc/locks: a lock held on the host, or (blocked) one a process waits for. */
export type SystemLock = Omit<HeldLock, 'pid' | 'fd' | 'path'> & { blocked: boolean };

/** The locks /proc/locks lists. */
export function parseProcLocks(text: string): SystemLock[] {
  const out: SystemLock[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (m) out.push({ ...fields(m), blocked: Boolean(m[1]) });
  }
  return out;
}

/** "MAJ:MIN:INODE" as /proc/locks writes it (hex device numbers), from mountinfo's decimal "MAJ:MIN" and an inode. */
export function lockFileKey(dev: string, ino: number | string): string {
  const [maj, min] = dev.split(':').map((n) => Number(n).toString(16).padStart(2, '0'));
  return `${maj}:${min}:${ino}`;
}

/** What the move knows of the container's locks: its own (fdinfo), the host's (/proc/locks), and the files it has open. */
export interface LockFacts {
  held: HeldLock[];
  system: SystemLock[];
  /** lockFileKey of every file the container's processes have open, and a path of it for messages */
  openFiles: Map<string, string>;
  /** the container's processes (host pids): a lock one of them took while the facts were read is its own */
  pids: Set<number>;
}

export interface LockPlan {
  /** pass --file-locks to dump and restore: always (see above) */
  fileLocks: true;
  /** the locks the container holds, each counted once (one shared by several descriptors too) */
  held: { flock: number; posix: number; ofd: number; lease: number };
  /** why the move cannot carry them, one reason per lock; empty when it can */
  refused: string[];
}

const KINDS: Record<string, keyof LockPlan['held']> = { FLOCK: 'flock', POSIX: 'posix', OFDLCK: 'ofd', LEASE: 'lease' };

const lockKey = (l: Omit<HeldLock, 'pid' | 'fd' | 'path'>) => `${l.kind} ${l.type} ${l.ownerPid} ${l.file} ${l.start} ${l.end}`;

/** What the move does with the container's locks. */
export function planFileLocks(f: LockFacts): LockPlan {
  const locks = f.held;
  const held = { flock: 0, posix: 0, ofd: 0, lease: 0 };
  const refused: string[] = [];
  const seen = new Set<string>();
  for (const l of locks) {
    // descriptors sharing one open file description (fork, dup) show its flock or OFD lock each
    const key = lockKey(l);
    if (seen.has(key)) continue;
    seen.add(key);
    const kind = KINDS[l.kind];
    const where = `${l.path} (process ${l.pid}, descriptor ${l.fd})`;
    if (kind) held[kind]++;
    else refused.push(`${where} holds a ${l.kind} lock, a kind CRIU cannot checkpoint`);
  }
  for (const l of f.system) {
    const path = f.openFiles.get(l.file);
    if (l.blocked || path === undefined || f.pids.has(l.ownerPid) || seen.has(lockKey(l))) continue;
    seen.add(lockKey(l));
    const who = l.ownerPid > 0 ? `process ${l.ownerPid}` : 'an open file description';
    refused.push(`${path} is locked (${l.kind} ${l.type}) by ${who} outside the container, which the move cannot take along`);
  }
  return { fileLocks: true, held, refused };
}

/** One line for the report: "2 held: 1 flock, 1 POSIX", or "none held". */
export function heldText(h: LockPlan['held']): string {
  const parts = ([['flock', h.flock], ['POSIX', h.posix], ['OFD', h.ofd], ['lease', h.lease]] as const).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
  const total = h.flock + h.posix + h.ofd + h.lease;
  return total ? `${total} held: ${parts.join(', ')}` : 'none held';
}
