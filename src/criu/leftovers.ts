/**
 * What a CRIU stopped half-way (killed by its watchdog, or cancelled) leaves
 * behind, and taking it away.
 *
 * After a dump: the network lock it puts into the dumped tree's network namespace
 * before it dumps and removes when it ends (criu/net.c, the default iptables
 * method: a CRIU chain that drops everything, jumped to from INPUT and
 * OUTPUT). Left in place, the container would run on with its network dead.
 * Nothing is done for a tree in this process's own network namespace: CRIU
 * locks only a namespace it dumps, and the host's rules are not ours to touch.
 */
import { readdir, readFile, readlink, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { readMountInfo, umount } from '../native/native.js';

const TIMEOUT_MS = 10_000;

/** Returns whether there was a lock to take away. */
export async function unlockCriuNetwork(pid: number): Promise<boolean> {
  const ns = `/proc/${pid}/ns/net`;
  const [theirs, ours] = await Promise.all([readlink(ns).catch(() => ''), readlink('/proc/self/ns/net').catch(() => '')]);
  if (theirs === '' || theirs === ours) return false;
  let found = false;
  for (const tool of ['iptables', 'ip6tables']) {
    const run = (...args: string[]) =>
      execa('nsenter', [`--net=${ns}`, '--', tool, '-w', ...args], { reject: false, stdin: 'ignore', timeout: TIMEOUT_MS }).then((r) => r.exitCode === 0);
    for (const chain of ['INPUT', 'OUTPUT']) {
      // as often as CRIU may have inserted the jump (once per lock)
      for (let i = 0; i < 8 && (await run('-D', chain, '-j', 'CRIU')); i++) found = true;
    }
    if (await run('-F', 'CRIU')) found = true;
    await run('-X', 'CRIU');
  }
  return found;
}

/**
 * The mounts CRIU made below its work directory: a restore mounts every
 * cgroup hierarchy under `.criu.cgyard.XXXXXX` there and unmounts them at its
 * end. Detached here (deepest first), so that the directory can be removed.
 * Returns the mount points it unmounted.
 */
export function unmountCriuYard(workDir: string): string[] {
  const below = `${path.resolve(workDir)}/`;
  const points = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p.startsWith(below))
    .sort((a, b) => b.length - a.length);
  const done: string[] = [];
  for (const p of points) {
    try {
      umount(p, { detach: true });
      done.push(p);
    } catch {
      /* gone with its parent */
    }
  }
  return done;
}

/**
 * After a restore: the empty directory CRIU makes for its mount namespace
 * work (`/tmp/.criu.mntns.XXXXXX`, a fixed place, its name logged nowhere)
 * and removes at its end. Removed when it is empty and was made while our
 * CRIU ran (`since`, epoch ms), and no other CRIU restore runs now (whose
 * directory it could be). Returns the directories removed.
 */
export async function removeCriuMntnsDirs(since: number): Promise<string[]> {
  if (await anotherCriuRestore()) return [];
  const removed: string[] = [];
  for (const name of await readdir('/tmp').catch(() => [] as string[])) {
    if (!name.startsWith('.criu.mntns.')) continue;
    const dir = path.join('/tmp', name);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory() || st.ctimeMs < since) continue;
    // rmdir refuses one that is not empty
    if (await rmdir(dir).then(() => true, () => false)) removed.push(dir);
  }
  return removed;
}

async function anotherCriuRestore(): Promise<boolean> {
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    // CRIU itself (or the private build's loader running it), not a supervisor that names it in its arguments
    if (/(^|\/)tsm-shim$/.test(argv[0] ?? '')) continue;
    const i = argv.findIndex((a) => /(^|\/)criu$/.test(a));
    if (i >= 0 && argv[i + 1] === 'restore') return true;
  }
  return false;
}
