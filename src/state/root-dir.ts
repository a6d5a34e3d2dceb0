import { chmodSync, lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';

/**
 * The state root holds container records, locks, leases and histories that
 * root acts on: it is created 0700 whatever the umask, and so is `locks/`.
 * One that exists already must be a directory owned by root (or by whoever
 * runs tsmigrate) that no other user may write to; otherwise it is refused,
 * never adopted or chmod'ed: another user who made it first (or a umask of
 * 000 under an older tsmigrate) could swap what lies below it.
 */
export function ensureStateRoot(root: string): void {
  const r = path.resolve(root);
  if (!present(path.dirname(r))) mkdirSync(path.dirname(r), { recursive: true, mode: 0o755 });
  if (!makePrivateDir(r)) return;
  assertNotWritableByOthers(r, true);
  if (!makePrivateDir(path.join(r, 'locks'))) return;
  assertNotWritableByOthers(path.join(r, 'locks'), false);
}

function present(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * mkdir 0700, then chmod 0700 (the umask can only have taken bits away).
 * False when this user may not create it (not root: the command then fails
 * with its own message, "needs root" say).
 */
function makePrivateDir(dir: string): boolean {
  try {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return true;
    if ((code === 'EACCES' || code === 'EPERM') && euid() !== 0) return false;
    throw e;
  }
}

function euid(): number {
  return process.geteuid?.() ?? 0;
}

/** The root may be a symbolic link an admin made (to another disk); `locks/` may not. Throws one line with the fix. */
export function assertNotWritableByOthers(dir: string, linkAllowed: boolean): void {
  const uid = euid();
  const link = lstatSync(dir);
  let st: Stats = link;
  if (link.isSymbolicLink()) {
    if (!linkAllowed) throw unsafe(dir, 'is a symbolic link', `remove it (rm ${dir}); tsmigrate makes it again`);
    if (link.uid !== 0 && link.uid !== uid) throw unsafe(dir, `is a symbolic link made by uid ${link.uid}`, `remove it (rm ${dir}) or make it root's (chown -h root:root ${dir})`);
    st = statSync(dir);
  }
  if (!st.isDirectory()) throw unsafe(dir, 'is not a directory', `move it away (mv ${dir} ${dir}.old); tsmigrate makes it again`);
  if (st.uid !== 0 && st.uid !== uid) throw unsafe(dir, `belongs to uid ${st.uid}, not to root`, `if you made it, give it to root: chown root:root ${dir} && chmod 0700 ${dir}; else remove it`);
  if ((st.mode & 0o022) !== 0) throw unsafe(dir, `has mode ${(st.mode & 0o7777).toString(8)} (other users may write to it)`, `chmod 0700 ${dir}`);
}

function unsafe(dir: string, what: string, fix: string): TsmError {
  return new TsmError('EBAD_STATE', `the state directory ${dir} ${what}: tsmigrate will not use it`, { fix });
}
