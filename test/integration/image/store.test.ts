import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import { execa } from 'execa';
import { isTsmError, type ErrorCode } from '../../../src/errors/errors.js';
import { ImageStore, resolveImage } from '../../../src/image/store.js';
import { statePaths, type StatePaths } from '../../../src/state/paths.js';
import type { Logger } from '../../../src/util/logger.js';
import { validateName } from '../../../src/util/name.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';

const BUSYBOX = '/bin/busybox';
const skip = skipUnless(existsSync(BUSYBOX), 'busybox not installed (apt-get install busybox-static)');

let work: string;
let paths: StatePaths;
let store: ImageStore;
let rootfsDir: string;
const warnings: string[] = [];
const log: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m) };

before(async () => {
  work = await fs.mkdtemp(path.join(tmpdir(), 'tsm-images-'));
  paths = statePaths(path.join(work, 'state'));
  store = new ImageStore(paths, log);
  // A tiny busybox rootfs.
  rootfsDir = path.join(work, 'rootfs');
  await fs.mkdir(path.join(rootfsDir, 'bin'), { recursive: true });
  await fs.mkdir(path.join(rootfsDir, 'etc'));
  await fs.mkdir(path.join(rootfsDir, 'tmp'));
  await fs.chmod(path.join(rootfsDir, 'tmp'), 0o1777);
  await fs.chmod(rootfsDir, 0o755);
  await fs.copyFile(BUSYBOX, path.join(rootfsDir, 'bin/busybox'));
  await fs.chmod(path.join(rootfsDir, 'bin/busybox'), 0o755);
  await fs.symlink('busybox', path.join(rootfsDir, 'bin/sh'));
  await fs.symlink('/bin/busybox', path.join(rootfsDir, 'bin/ls'));
  await fs.writeFile(path.join(rootfsDir, 'etc/hostname'), 'bb\n');
});

after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

/** No import or removal leftovers in <root>/images. */
async function assertNoTemps(): Promise<void> {
  const entries = await fs.readdir(paths.images).catch(() => [] as string[]);
  const temps = entries.filter((e) => e.startsWith('.'));
  assert.deepEqual(temps, [], `temp entries left in ${paths.images}`);
}

async function assertFails(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isTsmError(e, code), `expected ${code}, got ${String(e)}`);
    assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'));
    assert.ok(e.fix, 'has a fix');
    return true;
  });
  await assertNoTemps();
}

async function imageDirs(): Promise<string[]> {
  return (await fs.readdir(paths.images).catch(() => [] as string[])).filter((e) => /^[0-9a-f]{64}$/.test(e));
}

test('import from a directory and from tars of it give one image', { skip }, async () => {
  const a = await store.importImage('bb', rootfsDir);
  assert.equal(a.reused, false);
  assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a.id, a.digest.slice(7, 19));
  assert.equal(a.rootfs, path.join(paths.images, a.digest.slice(7), 'rootfs'));
  assert.equal(a.files, 7);
  assert.ok(a.size > (await fs.stat(BUSYBOX)).size);
  assert.equal(a.source.type, 'directory');
  // The stored tree is a faithful copy.
  assert.equal(await fs.readlink(path.join(a.rootfs, 'bin/sh')), 'busybox');
  assert.equal((await fs.stat(path.join(a.rootfs, 'tmp'))).mode & 0o7777, 0o1777);
  const { stdout } = await execa(path.join(a.rootfs, 'bin/busybox'), ['echo', 'hello']);
  assert.equal(stdout, 'hello');
  // image.json and names.json
  const meta = JSON.parse(await fs.readFile(path.join(paths.images, a.digest.slice(7), 'image.json'), 'utf8'));
  assert.equal(meta.name, 'bb');
  assert.equal(meta.digest, a.digest);
  assert.equal(typeof meta.importedAt, 'string');
  const names = JSON.parse(await fs.readFile(path.join(paths.images, 'names.json'), 'utf8'));
  assert.deepEqual(names, { bb: a.digest });
  // The store is not reachable by unprivileged users.
  assert.equal((await fs.stat(paths.images)).mode & 0o777, 0o700);

  const tarFile = path.join(work, 'bb.tar');
  await execa('tar', ['-C', rootfsDir, '-cf', tarFile, '.']);
  const b = await store.importImage('bb-tar', tarFile);
  assert.equal(b.digest, a.digest, 'same content, same digest');
  assert.equal(b.reused, true);
  assert.deepEqual(b.source, { type: 'directory', path: rootfsDir }, 'metadata of the stored image');

  // Compression is sniffed, not taken from the name.
  const gz = path.join(work, 'bb-gz.tar');
  await execa('tar', ['-C', rootfsDir, '-czf', gz, '.']);
  const c = await store.importImage('bb-gz', gz);
  assert.equal(c.digest, a.digest);
  const zst = path.join(work, 'bb.bin');
  await execa('sh', ['-c', 'tar -C "$1" -cf - . | zstd -q -o "$2"', 'sh', rootfsDir, zst]);
  const d = await store.importImage('bb-zst', zst);
  assert.equal(d.digest, a.digest);

  // Names that are also Object.prototype keys.
  const e = await store.importImage('constructor', rootfsDir);
  assert.equal(e.reused, true);
  assert.equal((await store.resolveImage('constructor')).name, 'constructor');
  await assertFails(store.resolveImage('toString'), 'ENOENT_IMAGE', /^unknown image "toString"$/);
  await store.removeImage('constructor', () => []);
  await assertFails(store.resolveImage('constructor'), 'ENOENT_IMAGE', /^unknown image "constructor"$/);

  assert.deepEqual(await imageDirs(), [a.digest.slice(7)]);
  await assertNoTemps();
});

test('ls lists every name with its image', { skip }, async () => {
  const list = await store.listImages();
  assert.deepEqual(list.map((i) => i.name), ['bb', 'bb-gz', 'bb-tar', 'bb-zst']);
  const digests = new Set(list.map((i) => i.digest));
  assert.equal(digests.size, 1);
  for (const i of list) {
    assert.equal(i.id.length, 12);
    assert.ok(i.size > 0);
    assert.equal(i.files, 7);
    assert.ok(!Number.isNaN(Date.parse(i.importedAt)));
  }
});

test('resolveImage by name, digest and prefix', { skip }, async () => {
  const byName = await store.resolveImage('bb-tar');
  assert.equal(byName.name, 'bb-tar');
  const hex = byName.digest.slice(7);
  const byDigest = await resolveImage(paths, byName.digest);
  assert.equal(byDigest.digest, byName.digest);
  assert.equal(byDigest.name, 'bb');
  assert.equal(byDigest.rootfs, byName.rootfs);
  assert.equal((await store.resolveImage(hex.slice(0, 12))).digest, byName.digest);
  assert.equal((await store.resolveImage(`sha256:${hex.slice(0, 20)}`)).digest, byName.digest);
  assert.equal((await store.resolveImage(hex)).digest, byName.digest);
  for (const ref of ['nope', hex.slice(0, 11), `${hex.slice(0, 11)}x`, '0'.repeat(64), '']) {
    await assert.rejects(store.resolveImage(ref), (e: unknown) => {
      assert.ok(isTsmError(e, 'ENOENT_IMAGE'), `for ${ref}: ${String(e)}`);
      assert.equal(e.message, `unknown image ${JSON.stringify(ref)}`);
      assert.match(e.fix ?? '', /tsmigrate image ls/);
      return true;
    });
  }
});

test('invalid names, duplicate names and a missing source are refused cleanly', { skip }, async () => {
  for (const bad of ['Bad', '-x', '.x', '', 'a'.repeat(64), 'a/b', 'a b', '..']) {
    await assertFails(store.importImage(bad, rootfsDir), 'EINVAL_NAME', /^invalid image name ".*": use 1-63 characters \[a-z0-9_.-\], starting with a letter or digit$/);
  }
  assert.equal(validateName('image', 'a'.repeat(63)), 'a'.repeat(63));
  await assertFails(store.importImage('bb', rootfsDir), 'EEXIST_IMAGE', /^image "bb" already exists$/);
  await assertFails(store.importImage('new', path.join(work, 'missing')), 'ENOENT_IMAGE', /missing does not exist$/);
  const notTar = path.join(work, 'not-a-tar.tar');
  await fs.writeFile(notTar, 'hello world, not a tar\n'.repeat(100));
  await assertFails(store.importImage('new', notTar), 'EINVAL_ARG', /is not a tar archive/);
  const truncated = path.join(work, 'truncated.tar.gz');
  await execa('sh', ['-c', 'tar -C "$1" -czf - . | head -c 20000 > "$2"', 'sh', rootfsDir, truncated]);
  await assertFails(store.importImage('new', truncated), 'EINVAL_ARG', /^not a valid tar archive/);
  // Importing a directory that contains the store itself.
  await assertFails(store.importImage('new', work), 'EINVAL_ARG', /contains the image store/);
  assert.equal((await store.listImages()).some((i) => i.name === 'new'), false);
});

test('an unsafe tar fails the import and leaves nothing behind', { skip }, async () => {
  const evil = path.join(work, 'evil.tar');
  const p = tar.pack();
  p.entry({ name: 'etc', type: 'symlink', linkname: work });
  p.entry({ name: 'etc/pwned', type: 'file' }, 'x');
  p.finalize();
  await pipeline(p as unknown as Readable, createWriteStream(evil));
  await assertFails(store.importImage('evil', evil), 'EINVAL_ARG', /^unsafe archive: entry "etc\/pwned" goes through the symlink "etc"/);
  assert.equal(existsSync(path.join(work, 'pwned')), false);
});

test('device nodes are left out, the same way for directories and tars', { skip: skip || skipUnless(isRoot, 'needs root (mknod)') }, async () => {
  const src = path.join(work, 'with-dev');
  await execa('cp', ['-a', `${rootfsDir}/.`, `${src}/`]);
  await fs.mkdir(path.join(src, 'dev'));
  await execa('mknod', [path.join(src, 'dev/null'), 'c', '1', '3']);
  const tarFile = path.join(work, 'with-dev.tar');
  await execa('tar', ['-C', src, '-cf', tarFile, '.']);
  warnings.length = 0;
  const a = await store.importImage('dev-dir', src);
  const b = await store.importImage('dev-tar', tarFile);
  assert.equal(a.digest, b.digest);
  assert.deepEqual(a.skipped, ['dev/null']);
  assert.deepEqual(b.skipped, ['dev/null']);
  assert.equal(existsSync(path.join(a.rootfs, 'dev/null')), false);
  assert.equal(warnings.length, 2);
  for (const w of warnings) assert.match(w, /skipped 1 device node/);
  const bb = await store.resolveImage('bb');
  assert.notEqual(a.digest, bb.digest, 'the extra /dev directory is content');
  await store.removeImage('dev-dir', () => []);
  await store.removeImage('dev-tar', () => []);
  assert.equal(existsSync(path.dirname(a.rootfs)), false);
});

test('rm: refused while in use, keeps shared content, removes the last name with its content', { skip }, async () => {
  const bb = await store.resolveImage('bb');
  const dir = path.dirname(bb.rootfs);
  const asked: string[] = [];
  const inUse = (users: string[]) => (digest: string) => {
    asked.push(digest);
    return users;
  };

  // Other names still point at the content: only the name goes.
  for (const n of ['bb-gz', 'bb-zst', 'bb-tar']) {
    const r = await store.removeImage(n, inUse(['c1']));
    assert.deepEqual(r, { name: n, digest: bb.digest, removedContent: false });
  }
  assert.ok(existsSync(dir));

  await assertFails(store.removeImage('bb', inUse(['c2', 'c1'])), 'EIMAGE_IN_USE', /^image bb is used by container\(s\) c1, c2$/);
  assert.equal(asked.at(-1), bb.digest);
  assert.ok(existsSync(dir));
  assert.deepEqual((await store.listImages()).map((i) => i.name), ['bb']);

  await assertFails(store.removeImage('nope', inUse([])), 'ENOENT_IMAGE', /^unknown image "nope"$/);
  await assertFails(store.removeImage('NOPE', inUse([])), 'EINVAL_NAME', /^invalid image name "NOPE"/);

  const r = await store.removeImage('bb', async () => []);
  assert.deepEqual(r, { name: 'bb', digest: bb.digest, removedContent: true });
  assert.equal(existsSync(dir), false);
  assert.deepEqual(await store.listImages(), []);
  assert.deepEqual(await imageDirs(), []);
  await assertNoTemps();
  await assertFails(store.resolveImage(bb.digest), 'ENOENT_IMAGE', /^unknown image/);

  // Import again after removal.
  const again = await store.importImage('bb', rootfsDir);
  assert.equal(again.digest, bb.digest);
  assert.equal(again.reused, false);
});

test('a held image-store lock makes changes fail at once', { skip }, async () => {
  const lockDir = path.join(paths.locks, 'images');
  await fs.mkdir(lockDir, { recursive: true });
  // pid 1 is always alive.
  await fs.writeFile(path.join(lockDir, 'owner'), '1\n');
  try {
    await assertFails(store.importImage('locked', rootfsDir), 'EBUSY', /the image store is busy/);
    await assertFails(store.removeImage('bb', () => []), 'EBUSY', /the image store is busy/);
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
  assert.ok((await store.resolveImage('bb')).digest);
});
