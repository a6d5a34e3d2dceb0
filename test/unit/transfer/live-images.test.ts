import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LiveImageWriter, liveImageStream } from '../../../src/transfer/live-images.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { preallocateFile } from '../../../src/util/warm-memory.js';

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('files written while the stream runs (pages appended in steps) arrive whole, with the others sent at the end', async () => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-live-'));
  try {
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    const pages = randomBytes(5 << 20);
    let finish!: () => void;
    const dumped = new Promise<void>((r) => (finish = r));
    const stream = liveImageStream(src, dumped, { pollMs: 1 });
    const wire = collect(stream);
    // a "CRIU" appending pages in uneven steps, writing small images as it goes
    const fh = await fs.open(path.join(src, 'pages-1.img'), 'w');
    for (let off = 0; off < pages.length; ) {
      const n = Math.min(pages.length - off, 300_000 + (off % 7) * 1000);
      await fh.write(pages, off, n);
      off += n;
      await new Promise((r) => setTimeout(r, 2));
    }
    await fh.close();
    await fs.writeFile(path.join(src, 'core-1.img'), 'core');
    await fs.writeFile(path.join(src, 'empty.img'), '');
    await fs.writeFile(path.join(src, 'pages-2.img'), pages.subarray(0, 5000));
    finish();
    const bytes = await wire;
    const dst = path.join(base, 'dst');
    await pipeline(Readable.from([bytes]), new LiveImageWriter(dst));
    assert.deepEqual((await fs.readdir(dst)).sort(), ['core-1.img', 'empty.img', 'pages-1.img', 'pages-2.img']);
    assert.deepEqual(await fs.readFile(path.join(dst, 'pages-1.img')), pages);
    assert.deepEqual(await fs.readFile(path.join(dst, 'pages-2.img')), pages.subarray(0, 5000));
    assert.equal(await fs.readFile(path.join(dst, 'core-1.img'), 'utf8'), 'core');
    assert.equal((await fs.stat(path.join(dst, 'pages-1.img'))).mode & 0o077, 0);
    // the same stream in any chunking (pieces of 1, 7, 13 bytes..., as a transport may deliver them)
    for (const size of [1, 7, 13, 4096, 65_537]) {
      const d = path.join(base, `chunked-${size}`);
      const pieces = function* () {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      };
      if (size < 100) {
        // byte-sized pieces of 5 MiB take long: only the head of the stream and its end, spliced
        const small = await fs.mkdtemp(path.join(base, 'small-'));
        const one = liveImageStream(small, Promise.resolve());
        await fs.writeFile(path.join(small, 'core-1.img'), 'core');
        await fs.writeFile(path.join(small, 'pages-1.img'), pages.subarray(0, 3000));
        const b = await collect(one);
        const parts = function* () {
          for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
        };
        await pipeline(Readable.from(parts()), new LiveImageWriter(d));
        assert.deepEqual(await fs.readFile(path.join(d, 'pages-1.img')), pages.subarray(0, 3000), `chunks of ${size}`);
        assert.equal(await fs.readFile(path.join(d, 'core-1.img'), 'utf8'), 'core');
        continue;
      }
      await pipeline(Readable.from(pieces()), new LiveImageWriter(d));
      assert.deepEqual(await fs.readFile(path.join(d, 'pages-1.img')), pages, `chunks of ${size}`);
      assert.deepEqual(await fs.readFile(path.join(d, 'pages-2.img')), pages.subarray(0, 5000));
    }
    // cut anywhere: refused (no end record), and a flipped length or name is refused
    for (const cut of [1, 100, bytes.length >> 1, bytes.length - 1]) {
      const d = path.join(base, `cut-${cut}`);
      await assert.rejects(pipeline(Readable.from([bytes.subarray(0, cut)]), new LiveImageWriter(d)), (e) => isTsmError(e) && e.code === 'EPROTO');
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('crafted streams are refused: path names, gaps, unknown record, files missing from the end record', async () => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-live-'));
  const rec = (name: string, off: number, data: Buffer) => {
    const n = Buffer.from(name);
    const h = Buffer.alloc(14 + n.length);
    h.write('D', 0, 'latin1');
    h[1] = n.length;
    n.copy(h, 2);
    h.writeBigUInt64BE(BigInt(off), 2 + n.length);
    h.writeUInt32BE(data.length, 10 + n.length);
    return Buffer.concat([h, data]);
  };
  const end = (files: Array<[string, number]>, kind = 'E') => {
    const parts = [Buffer.from([kind.charCodeAt(0), 0, 0, 0, files.length])];
    for (const [name, size] of files) {
      const n = Buffer.from(name);
      const e = Buffer.alloc(9 + n.length);
      e[0] = n.length;
      n.copy(e, 1);
      e.writeBigUInt64BE(BigInt(size), 1 + n.length);
      parts.push(e);
    }
    return Buffer.concat(parts);
  };
  try {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['traversal', Buffer.concat([rec('../x', 0, Buffer.from('a')), end([['../x', 1]])]), /file name/],
      ['slash', Buffer.concat([rec('a/b', 0, Buffer.from('a')), end([['a/b', 1]])]), /file name/],
      ['gap', Buffer.concat([rec('a.img', 5, Buffer.from('a')), end([['a.img', 6]])]), /data at 5, the file ends at 0/],
      ['overlap', Buffer.concat([rec('a.img', 0, Buffer.from('ab')), rec('a.img', 1, Buffer.from('c')), end([['a.img', 3]])]), /data at 1/],
      ['size', Buffer.concat([rec('a.img', 0, Buffer.from('ab')), end([['a.img', 3]])]), /2 bytes arrived, 3 were sent/],
      ['unlisted', Buffer.concat([rec('a.img', 0, Buffer.from('ab')), end([])]), /not in the end record/],
      ['type', Buffer.from('Zjunk'), /record type/],
      ['trailing', Buffer.concat([rec('a.img', 0, Buffer.from('ab')), end([['a.img', 2]]), Buffer.from('D')]), /after the end record/],
      ['manifest-end', Buffer.concat([end([['a.img', 2]], 'M'), rec('a.img', 0, Buffer.from('ab')), end([['a.img', 2], ['b.img', 0]])]), /differs from the manifest/],
      ['manifest-twice', Buffer.concat([end([['a.img', 2]], 'M'), end([['a.img', 2]], 'M')]), /a second manifest/],
      ['manifest-unlisted', Buffer.concat([end([['a.img', 2]], 'M'), rec('b.img', 0, Buffer.from('ab'))]), /b.img is not in the manifest/],
      ['manifest-short', Buffer.concat([rec('a.img', 0, Buffer.from('abc')), end([['a.img', 2]], 'M')]), /3 bytes arrived, the manifest says 2/],
      ['manifest-missing', Buffer.concat([rec('a.img', 0, Buffer.from('abc')), end([['b.img', 2]], 'M')]), /the manifest says none/],
    ];
    for (const [what, bytes, re] of cases) {
      await assert.rejects(pipeline(Readable.from([bytes]), new LiveImageWriter(path.join(base, what))), (e) => isTsmError(e) && re.test(e.message), what);
    }
    assert.deepEqual(await fs.readdir(base).then((l) => l.filter((n) => n.includes('..'))), []);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('a failed dump fails the stream', async () => {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-live-'));
  try {
    const dumped = Promise.reject(new Error('criu dump failed'));
    await assert.rejects(collect(liveImageStream(base, dumped)), /criu dump failed/);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('a preallocated pool file is taken over by the first pages image past 16 MiB, and cut to its size', async () => {
  const base = await fs.mkdtemp(path.join('/dev/shm', 'tsm-pool-'));
  try {
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    const big = randomBytes(20 << 20);
    const small = randomBytes(3 << 20);
    await fs.writeFile(path.join(src, 'pages-1.img'), small); // not big enough: keeps its own file
    await fs.writeFile(path.join(src, 'pages-2.img'), big);
    await fs.writeFile(path.join(src, 'core-1.img'), 'core');
    const bytes = await collect(liveImageStream(src, Promise.resolve()));
    const pool = path.join(base, 'images-pool');
    assert.equal(await preallocateFile(pool, 32 << 20), 32 << 20);
    const poolIno = (await fs.stat(pool)).ino;
    const dst = path.join(base, 'dst');
    // in pieces of 1 MiB, as records arrive
    const pieces = function* () {
      for (let i = 0; i < bytes.length; i += 1 << 20) yield bytes.subarray(i, i + (1 << 20));
    };
    await pipeline(Readable.from(pieces()), new LiveImageWriter(dst, { pool }));
    await assert.rejects(fs.stat(pool), { code: 'ENOENT' }, 'the pool was taken');
    const st = await fs.stat(path.join(dst, 'pages-2.img'));
    assert.equal(st.ino, poolIno, 'pages-2.img is the pool file');
    assert.equal(st.size, big.length, 'cut to what was written');
    assert.ok(st.blocks * 512 < (24 << 20), `the rest of the allocation went back (${st.blocks * 512} bytes allocated)`);
    assert.ok((await fs.readFile(path.join(dst, 'pages-2.img'))).equals(big));
    assert.ok((await fs.readFile(path.join(dst, 'pages-1.img'))).equals(small));
    assert.equal(await fs.readFile(path.join(dst, 'core-1.img'), 'utf8'), 'core');
    assert.equal(st.mode & 0o077, 0);
    // no pool to take (given back meanwhile): the images arrive all the same
    const dst2 = path.join(base, 'dst2');
    await pipeline(Readable.from(pieces()), new LiveImageWriter(dst2, { pool: path.join(base, 'gone') }));
    assert.ok((await fs.readFile(path.join(dst2, 'pages-2.img'))).equals(big));
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

test('after the dump: the other images whole, then the manifest (final sizes), then the rest of the pages; the writer reports both', async () => {
  const base = await fs.mkdtemp(path.join('/dev/shm', 'tsm-manifest-'));
  try {
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    const pages = randomBytes(3 << 20);
    let finish!: () => void;
    const dumped = new Promise<void>((r) => (finish = r));
    // the first MiB is there from the start; the reader takes it, then waits (a long poll) for the dump's end
    await fs.writeFile(path.join(src, 'pages-1.img'), pages.subarray(0, 1 << 20));
    const wire = collect(liveImageStream(src, dumped, { pollMs: 60_000 }));
    await new Promise((r) => setTimeout(r, 50));
    await fs.appendFile(path.join(src, 'pages-1.img'), pages.subarray(1 << 20));
    await fs.writeFile(path.join(src, 'core-1.img'), 'core');
    await fs.writeFile(path.join(src, 'zz-1.img'), 'last by name');
    await fs.writeFile(path.join(src, 'empty.img'), '');
    finish();
    const bytes = await wire;
    const seen: string[] = [];
    const sizes = new Map<string, number>();
    let manifest: ReadonlyArray<readonly [string, number]> = [];
    const pool = path.join(base, 'pool');
    await preallocateFile(pool, 64 << 20);
    const writer = new LiveImageWriter(path.join(base, 'dst'), {
      pool,
      onManifest: (files) => {
        manifest = files;
        // at the manifest every image but the pages is whole on disk
        for (const [name, size] of files) if (!name.startsWith('pages-')) seen.push(`${name}:${sizes.get(name) ?? 0}/${size}`);
        seen.push(`pages-1.img at the manifest: ${sizes.get('pages-1.img') ?? 0}`);
      },
      onWritten: (name, size) => {
        assert.ok(size >= (sizes.get(name) ?? 0), `${name} shrank`);
        sizes.set(name, size);
      },
    });
    await pipeline(Readable.from([bytes]), writer);
    assert.deepEqual(new Map(manifest), new Map([['core-1.img', 4], ['empty.img', 0], ['pages-1.img', pages.length], ['zz-1.img', 12]]));
    assert.deepEqual(seen.slice(0, 3), ['core-1.img:4/4', 'empty.img:0/0', 'zz-1.img:12/12']);
    assert.equal(seen[3], `pages-1.img at the manifest: ${1 << 20}`);
    assert.equal(sizes.get('pages-1.img'), pages.length);
    assert.deepEqual(await fs.readFile(path.join(base, 'dst', 'pages-1.img')), pages);
    // past 16 MiB no file is: the pool stays unused either way; after a manifest it is never taken
    assert.ok((await fs.stat(pool)).size >= 64 << 20);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});
