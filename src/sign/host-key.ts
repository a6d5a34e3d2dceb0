/**
 * This host's signing key: an Ed25519 pair under the state root,
 *   <root>/keys/host-ed25519.key   private (PKCS#8 PEM), 0600, owned by us
 *   <root>/keys/host-ed25519.pub   the public key line (public-key.ts)
 * made by `tsmigrate key init`, or on first need by whatever signs.
 */
import { generateKeyPairSync, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { promises as fs, constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { fsyncDir } from '../state/atomic.js';
import { DEFAULT_ROOT } from '../state/paths.js';
import { formatPublicKey, keyComment, publicKeyOf, rawOf, type PublicKey } from './public-key.js';

export interface HostKey {
  privateKey: KeyObject;
  publicKey: PublicKey;
}

export function keyFiles(root: string): { dir: string; private: string; public: string } {
  const dir = path.join(root, 'keys');
  return { dir, private: path.join(dir, 'host-ed25519.key'), public: path.join(dir, 'host-ed25519.pub') };
}

const noKey = (file: string) =>
  new TsmError('EBAD_STATE', `this host has no signing key (${file})`, { fix: 'make one with tsmigrate key init' });

/** Make a new key pair; refuses to replace one unless `force`. */
export async function initHostKey(root: string, o: { force?: boolean; comment?: string } = {}): Promise<HostKey> {
  const f = keyFiles(root);
  await fs.mkdir(f.dir, { recursive: true, mode: 0o700 });
  await fs.chmod(f.dir, 0o700);
  const exists = () =>
    new TsmError('EBAD_STATE', `this host already has a signing key (${f.private})`, {
      fix: 'keep it (tsmigrate key show prints it), or replace it with tsmigrate key init --force; peers that trust the old one must then trust the new one',
    });
  if (!o.force && (await fs.lstat(f.private).then(() => true, () => false))) throw exists();
  const pair = generateKeyPairSync('ed25519');
  // the state root too where it is not the default one (several local test hosts share a host name)
  const comment = o.comment ?? (path.resolve(root) === DEFAULT_ROOT ? os.hostname() : `${os.hostname()}:${path.resolve(root)}`);
  const publicKey = publicKeyOf(rawOf(pair.publicKey), keyComment(comment));
  const pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // written beside, then put in place; without force by link(), which fails when another
  // process made a key meanwhile (it may have signed with it already)
  const tmpPriv = `${f.private}.tmp-${process.pid}`;
  const tmpPub = `${f.public}.tmp-${process.pid}`;
  try {
    await writeNew(tmpPriv, pem, 0o600);
    await writeNew(tmpPub, `${formatPublicKey(publicKey)}\n`, 0o644);
    if (o.force) await fs.rename(tmpPriv, f.private);
    else {
      await fs.link(tmpPriv, f.private).catch((e: NodeJS.ErrnoException) => {
        throw e.code === 'EEXIST' ? exists() : e;
      });
    }
    await fs.rename(tmpPub, f.public);
    await fsyncDir(f.dir);
  } finally {
    await fs.rm(tmpPriv, { force: true });
    await fs.rm(tmpPub, { force: true });
  }
  return { privateKey: pair.privateKey, publicKey };
}

async function writeNew(file: string, data: string, mode: number): Promise<void> {
  await fs.rm(file, { force: true });
  const fh = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The key, or undefined when there is none; a key others could read or swap is refused. */
export async function readHostKey(root: string): Promise<HostKey | undefined> {
  const f = keyFiles(root);
  let fh;
  try {
    fh = await fs.open(f.private, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw unsafe(f.private, 'is a symbolic link');
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw unsafe(f.private, 'is not a regular file');
    if (st.uid !== (process.getuid?.() ?? st.uid)) throw unsafe(f.private, `is owned by uid ${st.uid}`);
    if ((st.mode & 0o077) !== 0) throw unsafe(f.private, `has mode ${(st.mode & 0o777).toString(8)}`);
    const privateKey = createPrivateKey(await fh.readFile());
    if (privateKey.asymmetricKeyType !== 'ed25519') throw unsafe(f.private, 'is not an Ed25519 key');
    const comment = (await fs.readFile(f.public, 'utf8').catch(() => '')).trim().split(/\s+/)[2];
    return { privateKey, publicKey: publicKeyOf(rawOf(createPublicKey(privateKey)), keyComment(comment ?? os.hostname())) };
  } finally {
    await fh.close();
  }
}

function unsafe(file: string, why: string): TsmError {
  return new TsmError('EINVAL_ARG', `the signing key ${file} ${why}; refusing to use it`, {
    fix: `make a new one with tsmigrate key init --force (as root), or restore it owned by root with chmod 600`,
  });
}

export async function loadHostKey(root: string): Promise<HostKey> {
  const k = await readHostKey(root);
  if (!k) throw noKey(keyFiles(root).private);
  return k;
}

/** The key, made on first need (see docs: signing needs no decision from the user). */
export async function ensureHostKey(root: string): Promise<HostKey> {
  const k = await readHostKey(root);
  if (k) return k;
  try {
    return await initHostKey(root);
  } catch (e) {
    // another process made it first
    if (e instanceof TsmError && e.code === 'EBAD_STATE') return loadHostKey(root);
    throw e;
  }
}
