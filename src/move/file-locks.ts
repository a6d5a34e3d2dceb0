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
 * OFDLCK and LEASE: an NFS server's DELEG, a kind a newer kernel adds).
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

const LINE = /^lock:\s+\d+:\s*(?:->\s*)?(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+([0-9a-fA-F]+:[0-9a-fA-F]+:\d+)\s+(\d+)\s+(\S+)/;

/** The locks an fdinfo file lists (kernels since 4.1 add a `lock:` line per lock held through the descriptor). */
export function parseFdinfoLocks(text: string, at: { pid: number; fd: number; path: string }): HeldLock[] {
  const out: HeldLock[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    out.push({ ...at, kind: m[1]!, state: m[2]!, type: m[3]!, ownerPid: Number(m[4]), file: m[5]!, start: Number(m[6]), end: m[7]! });
  }
  return out;
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

/** What the move does with the container's locks. */
export function planFileLocks(locks: HeldLock[]): LockPlan {
  const held = { flock: 0, posix: 0, ofd: 0, lease: 0 };
  const refused: string[] = [];
  const seen = new Set<string>();
  for (const l of locks) {
    // descriptors sharing one open file description (fork, dup) show its flock or OFD lock each
    const key = `${l.kind} ${l.type} ${l.ownerPid} ${l.file} ${l.start} ${l.end}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const kind = KINDS[l.kind];
    const where = `${l.path} (process ${l.pid}, descriptor ${l.fd})`;
    if (kind) held[kind]++;
    else refused.push(`${where} holds a ${l.kind} lock, a kind CRIU cannot checkpoint`);
  }
  return { fileLocks: true, held, refused };
}

/** One line for the report: "2 held: 1 flock, 1 POSIX", or "none held". */
export function heldText(h: LockPlan['held']): string {
  const parts = ([['flock', h.flock], ['POSIX', h.posix], ['OFD', h.ofd], ['lease', h.lease]] as const).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
  const total = h.flock + h.posix + h.ofd + h.lease;
  return total ? `${total} held: ${parts.join(', ')}` : 'none held';
}
