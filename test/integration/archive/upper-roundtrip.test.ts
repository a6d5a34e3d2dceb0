/**
 * A real overlayfs upper layer survives pack -> file (zstd) -> unpack: the
 * merged view of (same lower + restored upper) is identical to the original
 * merged view, whiteouts and opaque directories included. Needs root, the
 * native addon and overlayfs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { constants as C, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { packTreeToFile, unpackFileToTree } from '../../../src/archive/pack.js';
import * as native from '../../../src/native/native.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';
import { assertSameTree, snapshot } from '../../helpers/tree-snapshot.js';

const skip = skipUnless(isRoot, 'needs root') || skipUnless(native.nativeAvailable(), 'needs the native addon (npm run build:native)');

function mountsUnder(dir: string): string[] {
  return native
    .readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

test('overlay upper layer: pack, unpack into a fresh upper, same merged view', { skip, timeout: 120_000 }, async (t) => {
  const base = await fs.realpath(await fs.mkdtemp(path.join(tmpdir(), 'tsm-upper-')));
  const d = (p: string): string => path.join(base, p);
  try {
    for (const x of ['lower', 'upper', 'work', 'merged', 'upper2', 'work2', 'merged2']) await fs.mkdir(d(x));
    // ---- lower layer
    const L = (p: string): string => path.join(d('lower'), p);
    await fs.writeFile(L('keep.txt'), 'keep\n');
    await fs.writeFile(L('del.txt'), 'delete me\n');
    await fs.writeFile(L('mode.txt'), 'mode\n');
    await fs.chmod(L('mode.txt'), 0o644);
    await fs.writeFile(L('rename-me.txt'), 'renamed\n');
    await fs.mkdir(L('olddir/sub'), { recursive: true });
    await fs.writeFile(L('olddir/a'), 'a');
    await fs.writeFile(L('olddir/sub/c'), 'c');
    await fs.mkdir(L('dir'));
    await fs.writeFile(L('dir/keep2'), 'keep2');
    await fs.writeFile(L('dir/del2'), 'del2');
    await fs.writeFile(L('hl1'), 'hard\n');
    await fs.link(L('hl1'), L('hl2'));
    await fs.symlink('keep.txt', L('sym'));
    native.setXattr(L('keep.txt'), 'user.lower', 'from lower');

    native.mountOverlay({ lower: [d('lower')], upper: d('upper'), work: d('work'), target: d('merged') });
    // ---- changes through the merged view
    const M = (p: string): string => path.join(d('merged'), p);
    await fs.rm(M('del.txt')); // -> whiteout
    await fs.rm(M('dir/del2')); // -> whiteout inside a copied-up dir
    await fs.rm(M('olddir'), { recursive: true }); // then mkdir -> opaque dir
    await fs.mkdir(M('olddir'));
    await fs.writeFile(M('olddir/new.txt'), 'only this\n');
    await fs.chmod(M('mode.txt'), 0o600); // copy-up with metadata
    await fs.chown(M('mode.txt'), 1000, 1000);
    await fs.rename(M('rename-me.txt'), M('renamed.txt')); // copy-up + whiteout
    await fs.appendFile(M('hl1'), 'more\n'); // copy-up of one name of a lower hard link
    native.setXattr(M('keep.txt'), 'user.upper', Buffer.from([0, 1, 0xff])); // metadata copy-up with xattrs
    await fs.mkdir(M('new/deeper'), { recursive: true });
    await fs.writeFile(M('new/random.bin'), randomBytes(3 << 20));
    await fs.writeFile(M('new/deeper/text'), 'text\n'.repeat(1000));
    await fs.link(M('new/deeper/text'), M('new/text-link'));
    await fs.symlink('/nonexistent/abs', M('new/abs-link'));
    native.mknod(M('new/fifo'), C.S_IFIFO | 0o600, 0, 0);
    await fs.writeFile(M('new/suid'), '#!/bin/true\n');
    await fs.chown(M('new/suid'), 1234, 5678);
    await fs.chmod(M('new/suid'), 0o4755);
    const fh = await fs.open(M('new/sparse'), 'w');
    await fh.write(randomBytes(4096), 0, 4096, 10 << 20);
    await fh.truncate(32 << 20);
    await fh.close();
    // a distinctive ns mtime on an upper dir and file
    native.lutimesNs(M('new/deeper'), 1_600_000_000n, 111_111_111, 1_600_000_000n, 222_222_222);
    native.lutimesNs(M('new/random.bin'), 1_600_000_001n, 333_333_333, 1_600_000_001n, 444_444_444);

    const merged1 = await snapshot(d('merged'));
    native.umount(d('merged'));

    // the upper has what we think it has
    const U = (p: string): string => path.join(d('upper'), p);
    const wh = await fs.lstat(U('del.txt'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'del.txt is a whiteout in the upper');
    assert.deepEqual(native.getXattr(U('olddir'), 'trusted.overlay.opaque'), Buffer.from('y'));
    const upper1 = await snapshot(d('upper'));

    // ---- pack, unpack
    const file = d('upper.tar.zst');
    const r = await packTreeToFile(d('upper'), file, { zstd: 1 });
    t.diagnostic(`upper archive: ${r.bytes} bytes (tar ${r.tarBytes}), ${r.entries} entries`);
    assert.ok(r.bytes < 8 << 20, 'the 32 MiB sparse file is stored sparse');
    const warnings: string[] = [];
    await unpackFileToTree(file, d('upper2'), { allowWhiteouts: true, onWarning: (m) => warnings.push(m) });
    assert.deepEqual(warnings, []);
    assertSameTree(upper1, await snapshot(d('upper2')), 'upper layer (raw, with trusted.overlay.*)');

    native.mountOverlay({ lower: [d('lower')], upper: d('upper2'), work: d('work2'), target: d('merged2') });
    const merged2 = await snapshot(d('merged2'));
    assertSameTree(merged1, merged2, 'merged view');

    // explicit checks of the overlay semantics in the restored view
    const M2 = (p: string): string => path.join(d('merged2'), p);
    await assert.rejects(fs.lstat(M2('del.txt')), { code: 'ENOENT' });
    await assert.rejects(fs.lstat(M2('dir/del2')), { code: 'ENOENT' });
    await assert.rejects(fs.lstat(M2('rename-me.txt')), { code: 'ENOENT' });
    assert.deepEqual((await fs.readdir(M2('olddir'))).sort(), ['new.txt']);
    assert.deepEqual((await fs.readdir(M2('dir'))).sort(), ['keep2']);
    const mode = await fs.stat(M2('mode.txt'));
    assert.equal(mode.mode & 0o7777, 0o600);
    assert.equal(mode.uid, 1000);
    assert.equal(await fs.readFile(M2('hl1'), 'utf8'), 'hard\nmore\n');
    assert.equal(await fs.readFile(M2('hl2'), 'utf8'), 'hard\n');
    assert.deepEqual(native.getXattr(M2('keep.txt'), 'user.upper'), Buffer.from([0, 1, 0xff]));
    assert.deepEqual(native.getXattr(M2('keep.txt'), 'user.lower'), Buffer.from('from lower'));
    assert.equal((await fs.lstat(M2('new/deeper'), { bigint: true })).mtimeNs, 1_600_000_000_222_222_222n);
    assert.ok((await fs.stat(path.join(d('upper2'), 'new/sparse'))).blocks * 512 < 1 << 20, 'still sparse');
    assert.equal((await fs.lstat(M2('new/text-link'))).nlink, 2);
    assert.equal(merged2.get('new/suid')?.mode, '4755');
  } finally {
    for (const m of mountsUnder(base)) {
      try {
        native.umount(m);
      } catch {
        native.umount(m, { detach: true });
      }
    }
    // Never rm -r through a live mount.
    if (mountsUnder(base).length === 0) await fs.rm(base, { recursive: true, force: true });
  }
});
