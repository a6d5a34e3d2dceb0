/**
 * packTree / packTreeToFile / unpackFileToTree round trips on temp dirs, and
 * the PAX codecs (xattr-pax.ts, sparse.ts). Needs root (trusted.* xattrs,
 * mknod, chown) and the native addon; skipped otherwise.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { constants as C, promises as fs } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { packTree, packTreeToFile, unpackFileToTree, type PackStream } from '../../../src/archive/pack.js';
import { extractTar } from '../../../src/archive/safe-extract.js';
import { encodeSparseMap, parseSparseMap, probeSparse } from '../../../src/archive/sparse.js';
import {
  decodeXattrName,
  decodeXattrPax,
  encodePaxTime,
  encodeXattrName,
  encodeXattrPax,
  parsePaxTime,
  timeFromNs,
  timeToNs,
} from '../../../src/archive/xattr-pax.js';
import { isTsmError } from '../../../src/errors/errors.js';
import * as native from '../../../src/native/native.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';
import { assertSameTree, sha256File, snapshot } from '../../helpers/tree-snapshot.js';

const skip = skipUnless(isRoot, 'needs root') || skipUnless(native.nativeAvailable(), 'needs the native addon (npm run build:native)');

const temps: string[] = [];
after(async () => {
  for (const t of temps) await fs.rm(t, { recursive: true, force: true });
});

async function tmp(prefix = 'tsm-pack-'): Promise<string> {
  const d = await fs.realpath(await fs.mkdtemp(path.join(tmpdir(), prefix)));
  temps.push(d);
  return d;
}

const MiB = 1 << 20;

// ---------------------------------------------------------------------------
// tree snapshot

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface ListedEntry {
  header: tar.Header & { pax?: Record<string, string> | null };
  size: number;
}

async function listArchive(buf: Buffer): Promise<ListedEntry[]> {
  const ex = tar.extract();
  const out: ListedEntry[] = [];
  ex.on('entry', (header, stream, next) => {
    let size = 0;
    stream.on('data', (c: unknown) => (size += (c as Buffer).length));
    stream.on('end', () => {
      out.push({ header: header as ListedEntry['header'], size });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    ex.end(buf);
  });
  return out;
}

function setTime(p: string, sec: bigint, nsec: number, asec: bigint = sec + 100n, ansec: number = 987654321): void {
  native.lutimesNs(p, asec, ansec, sec, nsec);
}

// ---------------------------------------------------------------------------
// the full tree

/** Build a tree with every kind of entry packTree handles. Returns the sparse files' names. */
async function buildTree(src: string): Promise<void> {
  const p = (rel: string): string => path.join(src, rel);
  await fs.mkdir(p('a/b'), { recursive: true });
  await fs.mkdir(p('opaque'));
  native.setXattr(p('opaque'), 'trusted.overlay.opaque', 'y');
  await fs.writeFile(p('opaque/new.txt'), 'new contents\n');
  native.mknod(p('gone'), C.S_IFCHR, 0, 0); // whiteout
  native.mknod(p('a/gone2'), C.S_IFCHR, 0, 0);
  await fs.link(p('gone'), p('a/b/gone-link')); // a shared whiteout inode (as overlayfs makes them)
  await fs.writeFile(p('bin.dat'), randomBytes(1000));
  native.setXattr(p('bin.dat'), 'user.bin', Buffer.from([0x00, 0xff, 0x00, 0x80, 0xfe, 0x0a, 0x3d]));
  native.setXattr(p('bin.dat'), 'trusted.overlay.origin', Buffer.from([0x00, 0xfb, 0x21, 0x01, 0xff, 0x00]));
  native.setXattr(p('bin.dat'), 'trusted.overlay.impure', 'y');
  await fs.writeFile(p('user.txt'), 'hello\n');
  native.setXattr(p('user.txt'), 'user.comment', 'a comment = with %percent and ünïcode');
  native.setXattr(p('a'), 'user.dir', 'dir xattr');
  await fs.writeFile(p('h1'), 'hard linked\n');
  await fs.link(p('h1'), p('a/h2'));
  await fs.link(p('h1'), p('a/b/h3'));
  await fs.symlink('nowhere/at/all', p('dangling'));
  await fs.symlink('/etc/passwd', p('abs'));
  await fs.symlink('../h1', p('a/rel'));
  native.mknod(p('fifo'), C.S_IFIFO | 0o640, 0, 0);
  await fs.chmod(p('fifo'), 0o640);
  await fs.writeFile(p('suid'), '#!/bin/sh\n');
  await fs.chown(p('suid'), 1234, 5678);
  await fs.chmod(p('suid'), 0o4755);
  await fs.writeFile(p('sgid-file'), '');
  await fs.chmod(p('sgid-file'), 0o2711);
  await fs.mkdir(p('sgid-dir'));
  await fs.chmod(p('sgid-dir'), 0o2775);
  await fs.chown(p('sgid-dir'), 0, 50);
  await fs.mkdir(p('tmp'));
  await fs.chmod(p('tmp'), 0o1777);
  await fs.writeFile(p('mode000'), 'secret');
  await fs.chmod(p('mode000'), 0o000);
  await fs.writeFile(p('bigids'), 'ids');
  await fs.chown(p('bigids'), 300000, 2000000);
  await fs.writeFile(p('empty'), '');
  const longName = `${'ü'.repeat(40)}-${'x'.repeat(80)}`; // > 100 bytes, non-ASCII
  await fs.mkdir(p('a/b/deep'), { recursive: true });
  await fs.writeFile(p(`a/b/deep/${longName}`), 'long name\n');
  await fs.symlink('t'.repeat(300), p('a/longlink'));
  native.mknod(p('a/null'), C.S_IFCHR | 0o666, 1, 3);
  // sparse: 64 MiB with 3 small islands (start, middle, end); one ending in a hole; one all hole
  const fh = await fs.open(p('sparse64'), 'w');
  await fh.write(randomBytes(4096), 0, 4096, 0);
  await fh.write(randomBytes(8192), 0, 8192, 32 * MiB + 12288);
  await fh.write(randomBytes(4096), 0, 4096, 64 * MiB - 4096);
  await fh.close();
  const fh2 = await fs.open(p('sparse-tail-hole'), 'w');
  await fh2.write(Buffer.alloc(5000, 7), 0, 5000, 3 * MiB);
  await fh2.truncate(16 * MiB);
  await fh2.close();
  await fs.writeFile(p('all-hole'), '');
  await fs.truncate(p('all-hole'), 8 * MiB);
  // the root itself
  native.setXattr(src, 'user.root', 'root xattr');
  native.setXattr(src, 'trusted.overlay.impure', 'y');
  await fs.chmod(src, 0o751);
  await fs.chown(src, 100, 200);
  // times last (children first so that directory mtimes stick); one before the epoch
  const all = await listAll(src);
  let i = 0;
  for (const rel of all.reverse()) {
    i++;
    setTime(path.join(src, rel), 1_700_000_000n + BigInt(i), (123_456_789 + i * 1000) % 1_000_000_000);
  }
  setTime(p('user.txt'), -2n, 250_000_000); // 1969-12-31T23:59:58.25
}

/** All relative paths under root, parents first ('.' first). */
async function listAll(root: string): Promise<string[]> {
  const out: string[] = ['.'];
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await fs.readdir(rel === '.' ? root : path.join(root, rel), { withFileTypes: true })).sort((x, y) =>
      x.name < y.name ? -1 : 1,
    )) {
      const r = rel === '.' ? e.name : `${rel}/${e.name}`;
      out.push(r);
      if (e.isDirectory()) await walk(r);
    }
  };
  await walk('.');
  return out;
}

test('round trip of a tree with every kind of entry', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  const dst = path.join(base, 'dst');
  await fs.mkdir(src);
  await buildTree(src);
  const want = await snapshot(src); // reads files: atimes change (relatime)
  // A distinctive atime, set after the snapshot read the file.
  setTime(path.join(src, 'user.txt'), -2n, 250_000_000, 5n, 5);

  const warnings: string[] = [];
  const stream = packTree(src, { onWarning: (m) => warnings.push(m) });
  const buf = await collect(stream);
  assert.deepEqual(warnings, []);
  assert.ok(buf.length < MiB, `archive is small (${buf.length} bytes) although it holds 88 MiB of sparse files`);
  assert.equal(stream.stats.sparseFiles, 3);
  assert.equal(stream.stats.entries, want.size);

  // conventions visible in the archive
  const entries = await listArchive(buf);
  assert.equal(entries[0]?.header.name, './', 'the root comes first as ./');
  assert.equal(entries[0]?.header.type, 'directory');
  const byName = new Map(entries.map((e) => [e.header.name, e]));
  const sp = byName.get('./sparse64');
  assert.ok(sp, 'sparse entry present');
  assert.equal(sp.header.pax?.['TSMIGRATE.sparse'], `${64 * MiB};0,4096;${32 * MiB + 12288},8192;${64 * MiB - 4096},4096`);
  assert.equal(sp.size, 16384, 'only the data is stored');
  assert.equal(byName.get('./all-hole')?.header.pax?.['TSMIGRATE.sparse'], String(8 * MiB));
  const bin = byName.get('./bin.dat')!;
  assert.equal(bin.header.pax?.['TSMIGRATE.xattr.user.bin'], Buffer.from([0, 0xff, 0, 0x80, 0xfe, 0x0a, 0x3d]).toString('base64'));
  assert.equal(bin.header.pax?.['TSMIGRATE.xattr.trusted.overlay.impure'], Buffer.from('y').toString('base64'));
  assert.equal(byName.get('./opaque/')?.header.pax?.['TSMIGRATE.xattr.trusted.overlay.opaque'], 'eQ==');
  assert.equal(byName.get('./user.txt')?.header.pax?.['mtime'], '-1.750000000');
  assert.equal(byName.get('./gone')?.header.type, 'character-device', 'whiteouts are never stored as hard links');
  assert.equal(byName.get('./a/b/gone-link')?.header.type, 'character-device');
  const links = entries.filter((e) => e.header.type === 'link').map((e) => [e.header.name, e.header.linkname]);
  assert.deepEqual(links, [
    ['./a/h2', './a/b/h3'],
    ['./h1', './a/b/h3'],
  ]);
  assert.equal(byName.get('./abs')?.header.linkname, '/etc/passwd');
  assert.equal(byName.get('./abs')?.size, 0, 'symlinks are not followed');
  assert.equal(byName.get('./bigids')?.header.pax?.['uid'], '300000');
  assert.equal(byName.get('./bigids')?.header.uname, '');

  const res = await extractTar(Readable.from([buf]), dst, { allowWhiteouts: true, allowDevices: true, onWarning: (m) => (warnings as string[]).push(m) });
  assert.deepEqual(warnings, []);
  assert.equal(res.entries, want.size);
  assert.deepEqual(res.skipped, []);

  // atime (before reading anything in dst)
  const got = await fs.lstat(path.join(dst, 'user.txt'), { bigint: true });
  assert.equal(got.atimeNs, 5_000_000_005n, 'atime restored');
  const srcAfter = await fs.lstat(path.join(src, 'user.txt'), { bigint: true });
  assert.equal(srcAfter.atimeNs, 5_000_000_005n, 'packing does not change atimes (O_NOATIME)');
  const src64 = await fs.stat(path.join(src, 'sparse64'));
  const dst64 = await fs.stat(path.join(dst, 'sparse64'));
  assert.ok(dst64.blocks * 512 < MiB, `still sparse after extraction (${dst64.blocks} blocks)`);
  assert.equal(dst64.blocks, src64.blocks, 'same allocation');
  assert.ok((await fs.stat(path.join(dst, 'all-hole'))).blocks === 0);

  const have = await snapshot(dst);
  assertSameTree(want, have);
  // spot checks on what the snapshot compares
  assert.equal(have.get('suid')?.mode, '4755');
  assert.equal(have.get('suid')?.uid, 1234);
  assert.equal(have.get('suid')?.gid, 5678);
  assert.equal(have.get('.')?.mode, '751');
  assert.equal(have.get('.')?.xattrs['user.root'], Buffer.from('root xattr').toString('base64'));
  assert.equal(have.get('opaque')?.xattrs['trusted.overlay.opaque'], 'eQ==');
  assert.equal(have.get('gone')?.rdev, '0');
  assert.equal(have.get('user.txt')?.mtimeNs, '-1750000000');
  assert.equal(have.get('a/h2')?.inode, 'a/b/h3');
  assert.equal((await fs.lstat(path.join(dst, 'h1'))).nlink, 3);
  assert.equal(have.get('dangling')?.target, 'nowhere/at/all');
});

test('packTreeToFile / unpackFileToTree with zstd: hash and size of the written file, round trip', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  await buildTree(src);
  const want = await snapshot(src);
  for (const zstd of [false, 1, true] as const) {
    const file = path.join(base, `a-${String(zstd)}.tar`);
    const r = await packTreeToFile(src, file, { zstd });
    const raw = await fs.readFile(file);
    assert.equal(r.bytes, raw.length);
    assert.equal(r.sha256, createHash('sha256').update(raw).digest('hex'));
    assert.equal(r.entries, want.size);
    assert.equal(raw.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), zstd !== false, 'zstd magic');
    if (zstd !== false) assert.ok(r.bytes < r.tarBytes, 'compressed');
    const dst = path.join(base, `dst-${String(zstd)}`);
    await unpackFileToTree(file, dst, { allowWhiteouts: true, allowDevices: true });
    assertSameTree(want, await snapshot(dst));
  }
});

test('include filter; excluded directories are not descended into', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(path.join(src, 'keep/sub'), { recursive: true });
  await fs.mkdir(path.join(src, 'drop/sub'), { recursive: true });
  await fs.writeFile(path.join(src, 'keep/sub/f'), 'x');
  await fs.writeFile(path.join(src, 'drop/sub/f'), 'x');
  await fs.writeFile(path.join(src, 'keep/skip.log'), 'x');
  const seen: string[] = [];
  const buf = await collect(
    packTree(src, {
      include: (rel) => {
        seen.push(rel);
        return rel !== 'drop' && !rel.endsWith('.log');
      },
    }),
  );
  assert.deepEqual(seen, ['drop', 'keep', 'keep/skip.log', 'keep/sub', 'keep/sub/f']);
  assert.deepEqual(
    (await listArchive(buf)).map((e) => e.header.name),
    ['./', './keep/', './keep/sub/', './keep/sub/f'],
  );
});

test('sockets are skipped with a warning; non-UTF-8 names fail the pack', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path.join(src, 'sock'), r));
  try {
    const warnings: string[] = [];
    const s = packTree(src, { onWarning: (m) => warnings.push(m) });
    const entries = await listArchive(await collect(s));
    assert.deepEqual(
      entries.map((e) => e.header.name),
      ['./'],
    );
    assert.deepEqual(s.stats.skipped, ['sock']);
    assert.match(warnings[0] ?? '', /"sock" is a socket/);
  } finally {
    server.close();
  }
  await fs.writeFile(Buffer.from(`${src}/bad-\xff-name`, 'latin1'), 'x');
  await assert.rejects(collect(packTree(src)), (e: unknown) => {
    assert.ok(isTsmError(e, 'EINVAL_ARG'), String(e));
    assert.match(e.message, /not valid UTF-8/);
    return true;
  });
});

test('abort: the stream is destroyed with the signal reason and packTreeToFile removes its file', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  const fh = await fs.open(path.join(src, 'big'), 'w');
  for (let i = 0; i < 32; i++) await fh.write(randomBytes(MiB));
  await fh.close();
  const ac = new AbortController();
  const s = packTree(src, { signal: ac.signal });
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const c of s) {
        got += (c as Buffer).length;
        if (got > 4 * MiB) ac.abort(new Error('stop now'));
      }
    })(),
    /stop now/,
  );
  const ac2 = new AbortController();
  const file = path.join(base, 'out.tar');
  const p = packTreeToFile(src, file, { signal: ac2.signal, zstd: 1 });
  setImmediate(() => ac2.abort());
  await assert.rejects(p, (e: unknown) => (e as Error).name === 'AbortError');
  await assert.rejects(fs.stat(file), { code: 'ENOENT' });
});

test('back-pressure: an unread pack stream buffers only a few MiB of a big file', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  const fh = await fs.open(path.join(src, 'big'), 'w');
  for (let i = 0; i < 64; i++) await fh.write(Buffer.alloc(MiB, i + 1));
  await fh.close();
  const s: PackStream = packTree(src);
  // nobody reads
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(s.readableLength <= 4 * MiB, `buffered ${s.readableLength} bytes`);
  s.destroy();
});

test('200 MiB file round trip keeps RSS growth small', { skip, timeout: 120_000 }, async (t) => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  const fh = await fs.open(path.join(src, 'big'), 'w');
  const block = randomBytes(MiB);
  for (let i = 0; i < 200; i++) {
    block.writeUInt32LE(i, 0);
    await fh.write(block);
  }
  await fh.close();
  const srcHash = await sha256File(path.join(src, 'big'));
  globalThis.gc?.();
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    const file = path.join(base, 'big.tar');
    const r = await packTreeToFile(src, file);
    assert.ok(r.bytes > 200 * MiB);
    await unpackFileToTree(file, path.join(base, 'dst'));
    peak = Math.max(peak, process.memoryUsage().rss);
  } finally {
    clearInterval(timer);
  }
  const grew = (peak - rss0) / MiB;
  t.diagnostic(`peak RSS growth ${grew.toFixed(1)} MiB`);
  assert.ok(grew < 64, `RSS grew by ${grew.toFixed(1)} MiB`);
  assert.equal(await sha256File(path.join(base, 'dst/big')), srcHash);
});

test('truncated or corrupt archive files are rejected with a TsmError', { skip }, async () => {
  const base = await tmp();
  const src = path.join(base, 'src');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'f'), randomBytes(3 * MiB));
  await assert.rejects(packTreeToFile(src, path.join(src, 'self.tar')), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  for (const zstd of [false, 1] as const) {
    const file = path.join(base, `t-${String(zstd)}.tar`);
    const r = await packTreeToFile(src, file, { zstd });
    await fs.truncate(file, Math.floor(r.bytes / 2));
    await assert.rejects(unpackFileToTree(file, path.join(base, `dst-${String(zstd)}`)), (e: unknown) => {
      assert.ok(isTsmError(e, 'EINVAL_ARG') || isTsmError(e, 'EIO'), String(e));
      return true;
    });
  }
  const junk = path.join(base, 'junk.zst');
  await fs.writeFile(junk, Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(5000)]));
  await assert.rejects(unpackFileToTree(junk, path.join(base, 'dst-junk')), (e: unknown) => isTsmError(e));
});

// ---------------------------------------------------------------------------
// safe-extract and the codecs

async function archive(entries: Array<{ header: Partial<tar.Header> & { name: string; pax?: Record<string, string> }; data?: Buffer }>): Promise<Buffer> {
  const p = tar.pack();
  const done = collect(p as unknown as Readable);
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (e.data !== undefined) p.entry(e.header, e.data, cb);
      else p.entry(e.header, cb);
    });
  }
  p.finalize();
  return done;
}

test('safe-extract prefers TSMIGRATE.xattr over SCHILY.xattr for the same name', { skip }, async () => {
  const dst = await tmp();
  const buf = await archive([
    {
      header: {
        name: 'f',
        type: 'file',
        mode: 0o644,
        pax: {
          'SCHILY.xattr.user.both': 'schily',
          'TSMIGRATE.xattr.user.both': Buffer.from([1, 0, 255]).toString('base64'),
          'SCHILY.xattr.user.only-schily': 'plain',
          'TSMIGRATE.xattr.user.eq%3Dname': Buffer.from('v').toString('base64'),
        },
      },
      data: Buffer.from('x'),
    },
  ]);
  await extractTar(Readable.from([buf]), dst);
  const f = path.join(dst, 'f');
  assert.deepEqual(native.getXattr(f, 'user.both'), Buffer.from([1, 0, 255]));
  assert.deepEqual(native.getXattr(f, 'user.only-schily'), Buffer.from('plain'));
  assert.deepEqual(native.getXattr(f, 'user.eq=name'), Buffer.from('v'));
});

test('safe-extract rejects a bad sparse map before writing the file', { skip }, async () => {
  const dst = await tmp();
  for (const map of ['100;0,10;5,10', '100;0,30', '10;0,20', 'x;0,20', '100;0,20,1', '100;50,0;0,20']) {
    const buf = await archive([{ header: { name: 'f', type: 'file', pax: { 'TSMIGRATE.sparse': map } }, data: Buffer.alloc(20) }]);
    await assert.rejects(extractTar(Readable.from([buf]), dst), (e: unknown) => {
      assert.ok(isTsmError(e, 'EINVAL_ARG'), String(e));
      assert.match(e.message, /invalid sparse map/);
      return true;
    });
    await assert.rejects(fs.lstat(path.join(dst, 'f')), { code: 'ENOENT' });
  }
});

test('xattr name and value codec', () => {
  for (const n of ['user.x', 'trusted.overlay.opaque', 'user.a=b', 'user.100%', 'user.ü ñ\t', 'security.capability']) {
    const enc = encodeXattrName(n);
    assert.ok(!enc.includes('=') && !/[^\x21-\x7e]/.test(enc), enc);
    assert.equal(decodeXattrName(enc), n);
  }
  assert.equal(encodeXattrName('trusted.overlay.opaque'), 'trusted.overlay.opaque');
  assert.equal(encodeXattrName('user.a=b'), 'user.a%3Db');
  assert.throws(() => decodeXattrName('user.%zz'));
  assert.throws(() => decodeXattrName('user.%FF'), /UTF-8/);
  const vals = [
    { name: 'user.bin', value: Buffer.from([0, 0xff, 0x0a, 0x3d, 0x80]) },
    { name: 'user.empty', value: Buffer.alloc(0) },
  ];
  const pax = encodeXattrPax(vals, { mtime: '1.5' });
  assert.deepEqual(decodeXattrPax(pax), vals);
  const problems: string[] = [];
  assert.deepEqual(decodeXattrPax({ 'TSMIGRATE.xattr.user.x': 'not base64!', 'TSMIGRATE.xattr.user.%': 'AA==' }, (m) => problems.push(m)), []);
  assert.equal(problems.length, 2);
});

test('PAX time codec', () => {
  const cases: Array<[bigint, string]> = [
    [1_700_000_000_123_456_789n, '1700000000.123456789'],
    [0n, '0.000000000'],
    [-1_750_000_000n, '-1.750000000'],
    [-2_000_000_000n, '-2.000000000'],
    [-1n, '-0.000000001'],
  ];
  for (const [ns, s] of cases) {
    assert.equal(encodePaxTime(timeFromNs(ns)), s);
    assert.equal(timeToNs(parsePaxTime(s)!), ns);
  }
  assert.deepEqual(timeFromNs(-1_750_000_000n), { sec: -2n, nsec: 250_000_000 });
  assert.equal(timeToNs(parsePaxTime('1700000000')!), 1_700_000_000_000_000_000n);
  assert.equal(timeToNs(parsePaxTime('1.5')!), 1_500_000_000n);
  assert.equal(timeToNs(parsePaxTime('1.1234567899')!), 1_123_456_789n);
  for (const bad of ['', 'x', '1e9', '1.2.3', '--1']) assert.equal(parsePaxTime(bad), null);
});

test('sparse map codec and probe', async () => {
  const m = { realSize: 100, segments: [{ offset: 0, length: 10 }, { offset: 50, length: 50 }] };
  assert.equal(encodeSparseMap(m), '100;0,10;50,50');
  assert.deepEqual(parseSparseMap('100;0,10;50,50', 60), m);
  assert.deepEqual(parseSparseMap('100', 0), { realSize: 100, segments: [] });
  assert.throws(() => parseSparseMap('100;0,10;50,50', 59), /60 bytes/);
  // probe with a fake lseek: data [4096, 8192) and [12288, 20000) in a 20000-byte file
  const data = [
    [4096, 8192],
    [12288, 20000],
  ];
  const ops = {
    seekData: (_fd: number, off: number): number | null => {
      for (const [s, e] of data) if (off < e!) return Math.max(s!, off);
      return null;
    },
    seekHole: (_fd: number, off: number): number | null => {
      if (off >= 20000) return null;
      for (const [s, e] of data) if (off >= s! && off < e!) return e!;
      return off;
    },
  };
  assert.deepEqual(probeSparse(0, 20000, ops), {
    realSize: 20000,
    segments: [
      { offset: 4096, length: 4096 },
      { offset: 12288, length: 7712 },
    ],
  });
  assert.equal(probeSparse(0, 20000, { seekData: () => 0, seekHole: () => 20000 }), null);
});
