import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { extractTar, type ExtractOptions } from '../../../src/archive/safe-extract.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { devMajorMinor } from '../../../src/image/digest.js';

type Entry = { header: Parameters<tar.Pack['entry']>[0]; data?: Buffer | string };

async function archive(entries: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.data !== undefined) p.entry(e.header, e.data, cb);
      else p.entry(e.header, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

interface Sandbox {
  base: string;
  target: string;
  sentinel: string;
  outside: string;
}

const temps: string[] = [];
after(async () => {
  for (const t of temps) await fs.rm(t, { recursive: true, force: true });
});

async function sandbox(): Promise<Sandbox> {
  const base = await fs.mkdtemp(path.join(tmpdir(), 'tsm-extract-'));
  temps.push(base);
  const target = path.join(base, 'target');
  const sentinel = path.join(base, 'sentinel');
  const outside = path.join(base, 'outside.txt');
  await fs.mkdir(target);
  await fs.mkdir(sentinel);
  await fs.writeFile(outside, 'outside\n');
  return { base, target, sentinel, outside };
}

async function extract(buf: Buffer, target: string, opts: ExtractOptions = {}) {
  return extractTar(Readable.from([buf]), target, opts);
}

async function assertUnsafe(sb: Sandbox, entries: Entry[], opts: ExtractOptions = {}, match = /^unsafe archive: entry /): Promise<void> {
  const buf = await archive(entries);
  await assert.rejects(extract(buf, sb.target, opts), (e: unknown) => {
    assert.ok(isTsmError(e, 'EINVAL_ARG'), `expected EINVAL_ARG, got ${String(e)}`);
    assert.match(e.message, match);
    assert.ok(!e.message.includes('\n'), 'one-line message');
    assert.ok(e.fix, 'has a fix');
    return true;
  });
  assert.deepEqual(await fs.readdir(sb.sentinel), [], 'nothing written into the sentinel dir');
  assert.equal(await fs.readFile(sb.outside, 'utf8'), 'outside\n', 'outside file untouched');
  assert.equal((await fs.stat(sb.outside)).nlink, 1, 'no hard link made to the outside file');
}

test('refuses absolute paths', async () => {
  const sb = await sandbox();
  await assertUnsafe(sb, [{ header: { name: path.join(sb.sentinel, 'abs'), type: 'file' }, data: 'x' }]);
});

test('refuses ../x and a/../../x', async () => {
  const sb = await sandbox();
  await assertUnsafe(sb, [{ header: { name: '../sentinel/x', type: 'file' }, data: 'x' }]);
  await assertUnsafe(sb, [{ header: { name: 'a/../../sentinel/x', type: 'file' }, data: 'x' }]);
  await assertUnsafe(sb, [{ header: { name: './ok', type: 'file' }, data: 'x' }, { header: { name: 'a/b/../../../sentinel/y', type: 'directory' } }]);
  // The entry before the bad one was written (the caller removes the partial target).
  assert.equal(await fs.readFile(path.join(sb.target, 'ok'), 'utf8'), 'x');
});

test('refuses a NUL in a PAX path', async () => {
  const sb = await sandbox();
  await assertUnsafe(sb, [{ header: { name: 'plain', type: 'file', pax: { path: 'a\u0000b' } }, data: 'x' }]);
});

test('refuses to write through a symlink planted by the archive', async () => {
  const sb = await sandbox();
  await assertUnsafe(sb, [
    { header: { name: 'a', type: 'symlink', linkname: sb.sentinel } },
    { header: { name: 'a/passwd', type: 'file' }, data: 'root::0:0::/:/bin/sh\n' },
  ]);
  // Relative symlink and a directory entry through it.
  const sb2 = await sandbox();
  await assertUnsafe(sb2, [
    { header: { name: 'etc', type: 'symlink', linkname: '../sentinel' } },
    { header: { name: 'etc/sub/', type: 'directory' } },
  ]);
});

test('a file entry replaces a symlink instead of writing through it', async () => {
  const sb = await sandbox();
  const buf = await archive([
    { header: { name: 'x', type: 'symlink', linkname: path.join(sb.sentinel, 'y') } },
    { header: { name: 'x', type: 'file', mode: 0o644 }, data: 'mine' },
  ]);
  await extract(buf, sb.target);
  const st = await fs.lstat(path.join(sb.target, 'x'));
  assert.ok(st.isFile());
  assert.equal(await fs.readFile(path.join(sb.target, 'x'), 'utf8'), 'mine');
  assert.deepEqual(await fs.readdir(sb.sentinel), []);
});

test('refuses hard links outside the target or to non-files', async () => {
  const sb = await sandbox();
  await assertUnsafe(sb, [{ header: { name: 'h', type: 'link', linkname: '../outside.txt' } }]);
  await assertUnsafe(sb, [{ header: { name: 'h', type: 'link', linkname: sb.outside } }]);
  // A hard link to a symlink (which points outside).
  await assertUnsafe(sb, [
    { header: { name: 's', type: 'symlink', linkname: sb.outside } },
    { header: { name: 'h', type: 'link', linkname: 's' } },
  ]);
  // A hard link to something the archive did not extract.
  await fs.writeFile(path.join(sb.target, 'preexisting'), 'p');
  await assertUnsafe(sb, [{ header: { name: 'h', type: 'link', linkname: 'preexisting' } }]);
  // A file later replaced by a symlink is no longer a valid link target.
  await assertUnsafe(sb, [
    { header: { name: 'f', type: 'file' }, data: 'f' },
    { header: { name: 'f', type: 'symlink', linkname: sb.outside } },
    { header: { name: 'h', type: 'link', linkname: 'f' } },
  ]);
});

test('hard links to extracted files work', async () => {
  const sb = await sandbox();
  const buf = await archive([
    { header: { name: 'd/f', type: 'file', mode: 0o640 }, data: 'content' },
    { header: { name: 'd/g', type: 'link', linkname: './d/f' } },
  ]);
  const res = await extract(buf, sb.target);
  const a = await fs.stat(path.join(sb.target, 'd/f'));
  const b = await fs.stat(path.join(sb.target, 'd/g'));
  assert.equal(a.ino, b.ino);
  assert.equal(a.nlink, 2);
  assert.equal(res.entries, 2);
});

test('device nodes: skipped by default, refused with refuseDevices, created with allowDevices', async () => {
  const dev = { name: 'dev/null', type: 'character-device' as const, devmajor: 1, devminor: 3, mode: 0o666 };
  const sb = await sandbox();
  const warnings: string[] = [];
  const res = await extract(await archive([{ header: dev }]), sb.target, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(res.skipped, ['dev/null']);
  assert.equal(res.entries, 0);
  await assert.rejects(fs.lstat(path.join(sb.target, 'dev/null')), { code: 'ENOENT' });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /skipped 1 device node/);

  const sb2 = await sandbox();
  await assertUnsafe(sb2, [{ header: dev }], { refuseDevices: true }, /^unsafe archive: entry "dev\/null" is a device node \(c 1:3\)/);
  await assert.rejects(fs.lstat(path.join(sb2.target, 'dev/null')), { code: 'ENOENT' });
  // allowWhiteouts does not allow real devices.
  await assertUnsafe(sb2, [{ header: dev }], { refuseDevices: true, allowWhiteouts: true });

  if (process.getuid?.() === 0) {
    const sb3 = await sandbox();
    await extract(await archive([{ header: dev }]), sb3.target, { allowDevices: true });
    const st = await fs.lstat(path.join(sb3.target, 'dev/null'), { bigint: true });
    assert.ok(st.isCharacterDevice());
    assert.deepEqual(devMajorMinor(st.rdev), { major: 1n, minor: 3n });
  }
});

test('0:0 whiteouts only with allowWhiteouts', { skip: process.getuid?.() !== 0 && 'needs root (mknod)' }, async () => {
  const wh = { name: 'upper/gone', type: 'character-device' as const, devmajor: 0, devminor: 0, mode: 0o000 };
  const sb = await sandbox();
  const res = await extract(await archive([{ header: wh }]), sb.target);
  assert.deepEqual(res.skipped, ['upper/gone']);
  await assert.rejects(fs.lstat(path.join(sb.target, 'upper/gone')), { code: 'ENOENT' });

  await assertUnsafe(sb, [{ header: wh }], { refuseDevices: true });

  const sb2 = await sandbox();
  const res2 = await extract(await archive([{ header: wh }]), sb2.target, { allowWhiteouts: true, refuseDevices: true });
  assert.deepEqual(res2.skipped, []);
  const st = await fs.lstat(path.join(sb2.target, 'upper/gone'), { bigint: true });
  assert.ok(st.isCharacterDevice());
  assert.deepEqual(devMajorMinor(st.rdev), { major: 0n, minor: 0n });
});

test('FIFOs are created with their mode', async () => {
  const sb = await sandbox();
  await extract(await archive([{ header: { name: 'run/pipe', type: 'fifo', mode: 0o620 } }]), sb.target);
  const st = await fs.lstat(path.join(sb.target, 'run/pipe'));
  assert.ok(st.isFIFO());
  assert.equal(st.mode & 0o7777, 0o620);
});

test('nested directories get modes, owners and mtimes restored (also when listed after children)', async () => {
  const sb = await sandbox();
  const t1 = new Date('2001-02-03T04:05:06Z');
  const t2 = new Date('2002-03-04T05:06:07Z');
  const t3 = new Date('2003-04-05T06:07:08Z');
  const t4 = new Date('2004-05-06T07:08:09Z');
  const buf = await archive([
    { header: { name: './', type: 'directory', mode: 0o755, mtime: t4 } },
    { header: { name: 'd/', type: 'directory', mode: 0o750, mtime: t1, uid: 1234, gid: 5678 } },
    { header: { name: 'd/e/', type: 'directory', mode: 0o555, mtime: t2 } },
    { header: { name: 'd/e/su', type: 'file', mode: 0o4755, mtime: t3, uid: 0, gid: 0 }, data: '#!/bin/sh\n' },
    { header: { name: 'd/e/owned', type: 'file', mode: 0o2640, mtime: t3, uid: 1001, gid: 1002 }, data: 'x' },
    { header: { name: 'd/e/link', type: 'symlink', linkname: '/nowhere', mtime: t1, uid: 1003, gid: 1004 } },
    { header: { name: 'late/x', type: 'file', mode: 0o600, mtime: t3 }, data: 'late' },
    { header: { name: 'late', type: 'directory', mode: 0o711, mtime: t2 } },
  ]);
  const res = await extract(buf, sb.target);
  assert.equal(res.entries, 8);
  assert.equal(res.bytes, 10 + 1 + 4);
  const st = (p: string) => fs.lstat(path.join(sb.target, p));
  const d = await st('d');
  assert.equal(d.mode & 0o7777, 0o750);
  assert.equal(d.mtimeMs, t1.getTime());
  const e = await st('d/e');
  assert.equal(e.mode & 0o7777, 0o555);
  assert.equal(e.mtimeMs, t2.getTime());
  const su = await st('d/e/su');
  assert.equal(su.mode & 0o7777, 0o4755);
  assert.equal(su.mtimeMs, t3.getTime());
  const late = await st('late');
  assert.equal(late.mode & 0o7777, 0o711);
  assert.equal(late.mtimeMs, t2.getTime());
  const root = await fs.lstat(sb.target);
  assert.equal(root.mode & 0o7777, 0o755);
  assert.equal(root.mtimeMs, t4.getTime());
  const link = await st('d/e/link');
  assert.ok(link.isSymbolicLink());
  assert.equal(await fs.readlink(path.join(sb.target, 'd/e/link')), '/nowhere');
  assert.equal(link.mtimeMs, t1.getTime());
  if (process.getuid?.() === 0) {
    assert.equal(d.uid, 1234);
    assert.equal(d.gid, 5678);
    const owned = await st('d/e/owned');
    assert.equal(owned.uid, 1001);
    assert.equal(owned.gid, 1002);
    assert.equal(owned.mode & 0o7777, 0o2640, 'setgid kept after chown');
    assert.equal(link.uid, 1003);
    assert.equal(link.gid, 1004);
  }
});

test('preserveOwner: false leaves files owned by the caller', async () => {
  const sb = await sandbox();
  await extract(await archive([{ header: { name: 'f', type: 'file', uid: 4321, gid: 4321 }, data: 'x' }]), sb.target, { preserveOwner: false });
  const st = await fs.lstat(path.join(sb.target, 'f'));
  assert.equal(st.uid, process.getuid?.());
});

test('a 5 MiB file round-trips', async () => {
  const sb = await sandbox();
  const data = randomBytes(5 * 1024 * 1024);
  const res = await extract(await archive([{ header: { name: 'big.bin', type: 'file', mode: 0o600 }, data }]), sb.target);
  assert.equal(res.bytes, data.length);
  const got = await fs.readFile(path.join(sb.target, 'big.bin'));
  assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'));
});

test('a truncated archive is rejected as invalid', async () => {
  const sb = await sandbox();
  const buf = await archive([{ header: { name: 'f', type: 'file' }, data: randomBytes(4096) }]);
  await assert.rejects(extract(buf.subarray(0, 1500), sb.target), (e: unknown) => {
    assert.ok(isTsmError(e, 'EINVAL_ARG'));
    assert.match(e.message, /^not a valid tar archive/);
    return true;
  });
});

test('an unknown entry type (GNU sparse) is refused, not written as a file', async () => {
  const sb = await sandbox();
  const buf = Buffer.from(await archive([{ header: { name: 'sparse', type: 'file' }, data: 'x' }]));
  buf[156] = 'S'.charCodeAt(0);
  buf.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += buf[i]!;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  await assert.rejects(extract(buf, sb.target), (e: unknown) => {
    assert.ok(isTsmError(e, 'EINVAL_ARG'));
    assert.match(e.message, /"sparse" has an unsupported type/);
    return true;
  });
  await assert.rejects(fs.lstat(path.join(sb.target, 'sparse')), { code: 'ENOENT' });
});

test('PAX xattrs never fail the extraction', async () => {
  const sb = await sandbox();
  const warnings: string[] = [];
  const buf = await archive([{ header: { name: 'f', type: 'file', pax: { 'SCHILY.xattr.user.test': 'hello' } }, data: 'x' }]);
  await extract(buf, sb.target, { onWarning: (m) => warnings.push(m) });
  assert.equal(await fs.readFile(path.join(sb.target, 'f'), 'utf8'), 'x');
  for (const w of warnings) assert.match(w, /extended attribute/);
  // With the native addon built, the attribute is really set.
  const spec = '../../../src/native/native.js';
  const native = (await import(spec).catch(() => null)) as null | {
    nativeAvailable(): boolean;
    getXattr(p: string, n: string): Buffer | null;
  };
  if (native?.nativeAvailable()) {
    assert.equal(warnings.length, 0, warnings.join("; "));
    assert.equal(native.getXattr(path.join(sb.target, 'f'), 'user.test')?.toString(), 'hello');
    // bsdtar's encoding: URL-encoded name, base64 value (binary-safe).
    const bin = Buffer.from([0, 1, 2, 255]);
    const buf2 = await archive([{ header: { name: 'g', type: 'file', pax: { 'LIBARCHIVE.xattr.user.b%69n': bin.toString('base64') } }, data: 'y' }]);
    await extract(buf2, sb.target, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(native.getXattr(path.join(sb.target, 'g'), 'user.bin'), bin);
  }
});

test('an aborted signal stops the extraction', async () => {
  const sb = await sandbox();
  const ac = new AbortController();
  ac.abort();
  const buf = await archive([{ header: { name: 'f', type: 'file' }, data: 'x' }]);
  await assert.rejects(extract(buf, sb.target, { signal: ac.signal }), { name: 'AbortError' });
});
