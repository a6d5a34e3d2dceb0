/**
 * After a dump CRIU did not finish (killed by its watchdog or cancelled): take
 * away the network lock it puts into the dumped tree's network namespace
 * before it dumps and removes when it ends (criu/net.c, the default iptables
 * method: a CRIU chain that drops everything, jumped to from INPUT and
 * OUTPUT). Left in place, the container would run on with its network dead.
 * Nothing is done for a tree in this process's own network namespace: CRIU
 * locks only a namespace it dumps, and the host's rules are not ours to touch.
 */
import { readlink } from 'node:fs/promises';
import { execa } from 'execa';

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
