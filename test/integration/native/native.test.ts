/**
 * Integration tests for the tsm_native addon through src/native/native.ts.
 * Needs the addon built (npm run build:native) and, for most tests, root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import * as native from '../../../src/native/native.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';

const { constants: C } = native;
const needRoot = skipUnless(isRoot, 'needs root (mount, mknod, trusted.* xattrs)');

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return native
    .readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => p === dir || p.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** Run `fn` in a fresh temp dir; afterwards unmount anything left in it, then delete it. */
async function withScratch(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'tsm-native-')));
  try {
    await fn(dir);
  } finally {
    const left = mountsUnder(dir);
    for (const m of left) {
      try {
        native.umount(m, { detach: true });
      } catch {
        // reported below
      }
    }
    // Never rm -r through a live mount.
    if (mountsUnder(dir).length === 0) fs.rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'test left mounts behind');
  }
}

function assertErrno(fn: () => unknown, code: string, syscall: string, p?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(native.isErrnoError(e), `not an errno error: ${String(e)}`);
    assert.equal(e.code, code);
    assert.equal(e.syscall, syscall);
    assert.ok(e.errno < 0, 'errno is negative like Node');
    if (p !== undefined) {
      assert.equal(e.path, p);
      assert.match(e.message, new RegExp(`^${code}: .+, ${syscall} '${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'$`));
    }
    return true;
  });
}

test('the addon loads and agrees on constants', () => {
  assert.equal(native.nativeAvailable(), true, 'build it with: npm run build:native');
  assert.equal(C.MS_BIND, 4096);
  assert.equal(C.S_IFCHR, 0o020000);
  assert.ok(Object.isFrozen(C));
});

test('mount a tmpfs and unmount it', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const mnt = path.join(dir, 'mnt with space');
    fs.mkdirSync(mnt);
    assert.equal(native.isMountpoint(mnt), false);
    native.mount('tsm-test', mnt, 'tmpfs', C.MS_NOSUID | C.MS_NODEV, 'size=1m,mode=0755');
    try {
      assert.equal(native.isMountpoint(mnt), true);
      const info = native.readMountInfo().find((m) => m.mountPoint === mnt);
      assert.ok(info, 'mount point (with an escaped space) found in mountinfo');
      assert.equal(info.fstype, 'tmpfs');
      assert.equal(info.source, 'tsm-test');
      assert.match(info.mountOptions, /nosuid/);
      fs.writeFileSync(path.join(mnt, 'f'), 'x');
    } finally {
      native.umount(mnt);
    }
    assert.equal(native.isMountpoint(mnt), false);
    assert.equal(fs.existsSync(path.join(mnt, 'f')), false, 'file lived on the tmpfs');
  });
});

test('isMountpoint sees a bind mount within one filesystem', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(a, 'f'), 'hello');
    native.mount(a, b, null, C.MS_BIND);
    try {
      assert.equal(fs.statSync(a).dev, fs.statSync(b).dev, 'same st_dev');
      assert.equal(native.isMountpoint(b), true);
      assert.equal(native.isMountpoint(a), false);
      assert.equal(fs.readFileSync(path.join(b, 'f'), 'utf8'), 'hello');
    } finally {
      native.umount(b, { detach: true });
    }
    assert.equal(native.isMountpoint(b), false);
    assert.equal(native.isMountpoint(path.join(dir, 'missing')), false);
  });
});

test('overlay: writes land in upper, deletes leave whiteouts, recreated dirs are opaque', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => path.join(dir, n)) as [
      string,
      string,
      string,
      string,
    ];
    for (const d of [lower, upper, work, merged]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(lower, 'keep'), 'keep');
    fs.writeFileSync(path.join(lower, 'gone'), 'gone');
    fs.mkdirSync(path.join(lower, 'd'));
    fs.writeFileSync(path.join(lower, 'd', 'x'), 'x');

    native.mountOverlay({ lower: [lower], upper, work, target: merged });
    try {
      assert.equal(native.isMountpoint(merged), true);
      assert.equal(fs.readFileSync(path.join(merged, 'keep'), 'utf8'), 'keep');

      fs.writeFileSync(path.join(merged, 'new.txt'), 'new');
      assert.equal(fs.readFileSync(path.join(upper, 'new.txt'), 'utf8'), 'new');
      assert.equal(fs.existsSync(path.join(lower, 'new.txt')), false);

      fs.unlinkSync(path.join(merged, 'gone'));
      const wh = fs.lstatSync(path.join(upper, 'gone'));
      assert.ok(wh.isCharacterDevice(), 'whiteout is a char device');
      assert.equal(wh.rdev, 0, 'whiteout is 0:0');
      assert.equal(fs.existsSync(path.join(lower, 'gone')), true, 'lower untouched');

      fs.rmSync(path.join(merged, 'd'), { recursive: true });
      fs.mkdirSync(path.join(merged, 'd'));
      assert.deepEqual(fs.readdirSync(path.join(merged, 'd')), []);
      const opaque = native.getXattr(path.join(upper, 'd'), 'trusted.overlay.opaque');
      assert.ok(opaque, 'trusted.overlay.opaque is set');
      assert.equal(opaque.toString(), 'y');
      assert.ok(native.listXattrs(path.join(upper, 'd')).includes('trusted.overlay.opaque'));
    } finally {
      native.umount(merged);
    }
    assert.equal(native.isMountpoint(merged), false);
  });
});

test('overlay: layer paths with "," ":" and "\\" are escaped', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const lower1 = path.join(dir, 'lo,wer:1');
    const lower2 = path.join(dir, 'lo\\wer2');
    const upper = path.join(dir, 'up,per');
    const work = path.join(dir, 'wo:rk');
    const merged = path.join(dir, 'merged');
    for (const d of [lower1, lower2, upper, work, merged]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(lower1, 'a'), 'top');
    fs.writeFileSync(path.join(lower2, 'a'), 'bottom');
    fs.writeFileSync(path.join(lower2, 'b'), 'b');

    const data = native.overlayData({ lower: [lower1, lower2], upper, work });
    assert.equal(
      data,
      `lowerdir=${dir}/lo\\,wer\\:1:${dir}/lo\\\\wer2,upperdir=${dir}/up\\,per,workdir=${dir}/wo\\:rk`,
    );
    native.mountOverlay({ lower: [lower1, lower2], upper, work, target: merged });
    try {
      assert.equal(fs.readFileSync(path.join(merged, 'a'), 'utf8'), 'top', 'first lower is topmost');
      assert.equal(fs.readFileSync(path.join(merged, 'b'), 'utf8'), 'b');
      fs.writeFileSync(path.join(merged, 'c'), 'c');
      assert.equal(fs.readFileSync(path.join(upper, 'c'), 'utf8'), 'c');
    } finally {
      native.umount(merged);
    }
  });
});

test('overlayData rejects bad input with EINVAL_ARG', () => {
  const bad = (f: () => unknown): void => assert.throws(f, (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  bad(() => native.overlayData({ lower: [] }));
  bad(() => native.overlayData({ lower: ['/a'], upper: '/u' }));
  bad(() => native.overlayData({ lower: ['/a'], work: '/w' }));
  bad(() => native.overlayData({ lower: [''] }));
  bad(() => native.overlayData({ lower: Array.from({ length: 200 }, (_, i) => `/var/lib/tsmigrate/images/layer-${i}`) }));
  assert.equal(native.overlayData({ lower: ['/a', '/b'], options: ['index=off'] }), 'lowerdir=/a:/b,index=off');
});

test('mknod: whiteout-style 0:0 char device, FIFO, and a real device number', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const wh = path.join(dir, 'wh');
    native.mknod(wh, C.S_IFCHR | 0o600, 0, 0);
    const st = fs.lstatSync(wh);
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.equal(st.mode & 0o777, 0o600 & ~process.umask());

    const fifo = path.join(dir, 'fifo');
    native.mknod(fifo, C.S_IFIFO | 0o644);
    assert.ok(fs.lstatSync(fifo).isFIFO());

    const nul = path.join(dir, 'null');
    native.mknod(nul, C.S_IFCHR | 0o666, 1, 3);
    assert.equal(fs.lstatSync(nul).rdev, (1 << 8) | 3);

    assertErrno(() => native.mknod(fifo, C.S_IFIFO | 0o644), 'EEXIST', 'mknod', fifo);
    assert.throws(() => native.mknod(path.join(dir, 'big'), C.S_IFCHR, 4096, 0), RangeError);
  });
});

test('xattrs on a regular file (user.* and trusted.*)', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const f = path.join(dir, 'f');
    fs.writeFileSync(f, 'data');
    assert.deepEqual(native.listXattrs(f), []);
    assert.equal(native.getXattr(f, 'user.missing'), null);

    native.setXattr(f, 'user.text', 'héllo');
    const bin = Buffer.from([0, 1, 2, 0, 255]);
    native.setXattr(f, 'trusted.bin', bin);
    native.setXattr(f, 'user.empty', Buffer.alloc(0));
    native.setXattr(f, 'user.u8', new Uint8Array([9, 8, 7]).subarray(1));

    assert.equal(native.getXattr(f, 'user.text')?.toString('utf8'), 'héllo');
    assert.deepEqual(native.getXattr(f, 'trusted.bin'), bin);
    assert.deepEqual(native.getXattr(f, 'user.empty'), Buffer.alloc(0));
    assert.deepEqual(native.getXattr(f, 'user.u8'), Buffer.from([8, 7]));
    assert.deepEqual(native.listXattrs(f).sort(), ['trusted.bin', 'user.empty', 'user.text', 'user.u8']);

    // a value larger than a typical first guess
    const big = Buffer.alloc(3000, 0x61);
    native.setXattr(f, 'user.big', big);
    assert.deepEqual(native.getXattr(f, 'user.big'), big);

    assertErrno(() => native.setXattr(f, 'user.text', 'x', C.XATTR_CREATE), 'EEXIST', 'lsetxattr', f);
    assertErrno(() => native.setXattr(f, 'user.nope', 'x', C.XATTR_REPLACE), 'ENODATA', 'lsetxattr', f);
    native.setXattr(f, 'user.text', 'bye', C.XATTR_REPLACE);
    assert.equal(native.getXattr(f, 'user.text')?.toString(), 'bye');

    for (const n of ['user.text', 'trusted.bin', 'user.empty', 'user.u8', 'user.big']) native.removeXattr(f, n);
    assert.deepEqual(native.listXattrs(f), []);
    assertErrno(() => native.removeXattr(f, 'user.text'), 'ENODATA', 'lremovexattr', f);
  });
});

test('xattrs on a symlink: never follow; user.* is refused with EPERM', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const target = path.join(dir, 'target');
    const link = path.join(dir, 'link');
    fs.writeFileSync(target, 't');
    fs.symlinkSync('target', link);
    native.setXattr(target, 'user.on-target', 'x');

    assert.equal(native.getXattr(link, 'user.on-target'), null, 'lgetxattr does not follow');
    assert.deepEqual(native.listXattrs(link), []);

    native.setXattr(link, 'trusted.on-link', 'l');
    assert.equal(native.getXattr(link, 'trusted.on-link')?.toString(), 'l');
    assert.deepEqual(native.listXattrs(link), ['trusted.on-link']);
    assert.equal(native.getXattr(target, 'trusted.on-link'), null, 'target untouched');

    assertErrno(() => native.setXattr(link, 'user.x', 'v'), 'EPERM', 'lsetxattr', link);

    native.removeXattr(link, 'trusted.on-link');
    assert.deepEqual(native.listXattrs(link), []);

    // dangling symlinks work too
    const dangling = path.join(dir, 'dangling');
    fs.symlinkSync('nowhere', dangling);
    native.setXattr(dangling, 'trusted.d', 'd');
    assert.equal(native.getXattr(dangling, 'trusted.d')?.toString(), 'd');
  });
});

test('errors are shaped like Node fs errors', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const missing = path.join(dir, 'missing');
    assert.throws(
      () => native.mount('x', missing, 'tmpfs', 0, null),
      (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.ok(native.isErrnoError(e, 'ENOENT'));
        assert.equal(e.errno, -2);
        assert.equal(e.syscall, 'mount');
        assert.equal(e.path, missing);
        assert.equal(e.message, `ENOENT: no such file or directory, mount '${missing}'`);
        return true;
      },
    );
    // same shape as Node's own
    assert.throws(
      () => fs.statSync(missing),
      (e: unknown) => native.isErrnoError(e, 'ENOENT') && e.message === `ENOENT: no such file or directory, stat '${missing}'`,
    );
    assertErrno(() => native.umount(dir), 'EINVAL', 'umount2', dir);
    assertErrno(() => native.getXattr(missing, 'user.a'), 'ENOENT', 'lgetxattr', missing);
    assertErrno(() => native.listXattrs(missing), 'ENOENT', 'llistxattr', missing);
    assertErrno(() => native.lutimesNs(missing, 0, 0, 0, 0), 'ENOENT', 'utimensat', missing);
    assertErrno(() => native.mount(null, dir, 'no-such-fs', 0, null), 'ENODEV', 'mount', dir);
    assertErrno(() => native.setns(999_999, 0), 'EBADF', 'setns');
  });
});

test('bad arguments throw TypeError/RangeError; NUL bytes are rejected, not truncated', async () => {
  await withScratch((dir) => {
    const nul = (e: unknown): boolean =>
      e instanceof TypeError && (e as NodeJS.ErrnoException).code === 'ERR_INVALID_ARG_VALUE';
    const type = (e: unknown): boolean =>
      e instanceof TypeError && (e as NodeJS.ErrnoException).code === 'ERR_INVALID_ARG_TYPE';
    const a = path.join(dir, 'a');

    assert.throws(() => native.mount(null, `${a}\0b`, 'tmpfs', 0, null), nul);
    assert.throws(() => native.mount(null, a, 'tmp\0fs', 0, null), nul);
    assert.throws(() => native.mount(null, a, 'tmpfs', 0, 'size=1m\0'), nul);
    assert.throws(() => native.mknod(`${a}\0b`, C.S_IFIFO | 0o600), nul);
    assert.equal(fs.existsSync(a), false, 'nothing created at the truncated path');
    assert.throws(() => native.getXattr(`${dir}\0`, 'user.a'), nul);
    assert.throws(() => native.getXattr(dir, 'user.a\0b'), nul);
    assert.throws(() => native.setXattr(`${dir}\0`, 'user.a', 'v'), nul);
    assert.throws(() => native.listXattrs(`${dir}\0`), nul);
    assert.throws(() => native.removeXattr(`${dir}\0`, 'user.a'), nul);
    assert.throws(() => native.lutimesNs(`${dir}\0`, 0, 0, 0, 0), nul);
    assert.throws(() => native.umount(`${dir}\0`), nul);

    const any = native as unknown as Record<string, (...args: unknown[]) => unknown>;
    assert.throws(() => any['mount']!(1, a, 'tmpfs', 0, null), type);
    assert.throws(() => any['mount']!(null, undefined, 'tmpfs', 0, null), type);
    assert.throws(() => any['mount']!(null, a, 'tmpfs', '0', null), type);
    assert.throws(() => any['getXattr']!(dir, 42), type);
    assert.throws(() => any['mknod']!(a, C.S_IFIFO, 'x', 0), type);
    assert.throws(() => any['lutimesNs']!(a, 0, 0n, 0, 0), type);
    assert.throws(() => native.mount(null, a, 'tmpfs', 1.5, null), RangeError);
    assert.throws(() => native.mount(null, a, 'tmpfs', -1, null), RangeError);
    assert.throws(() => native.mount(null, a, 'tmpfs', Number.NaN, null), RangeError);
    assert.throws(() => native.lutimesNs(a, 0, 1_000_000_000, 0, 0), RangeError);
    assert.throws(() => native.lutimesNs(a, 2n ** 64n, 0, 0, 0), RangeError);
    assert.equal(fs.existsSync(a), false);
  });
});

test('lutimesNs sets nanosecond times on the symlink itself', { skip: needRoot }, async () => {
  await withScratch((dir) => {
    const target = path.join(dir, 'target');
    const link = path.join(dir, 'link');
    fs.writeFileSync(target, 't');
    fs.symlinkSync('target', link);
    const before = fs.statSync(target, { bigint: true });

    native.lutimesNs(link, 1_234_567_890, 123_456_789, 1_500_000_000, 987_654_321);
    const st = fs.lstatSync(link, { bigint: true });
    assert.equal(st.atimeNs, 1_234_567_890_123_456_789n);
    assert.equal(st.mtimeNs, 1_500_000_000_987_654_321n);

    const after = fs.statSync(target, { bigint: true });
    assert.equal(after.mtimeNs, before.mtimeNs, 'target not touched');

    // bigint seconds, pre-1970 times, and UTIME_OMIT
    native.lutimesNs(link, 0n, C.UTIME_OMIT, -86_400n, 5);
    const st2 = fs.lstatSync(link, { bigint: true });
    assert.equal(st2.atimeNs, 1_234_567_890_123_456_789n, 'atime kept with UTIME_OMIT');
    assert.equal(st2.mtimeNs, -86_400n * 1_000_000_000n + 5n);

    // dangling symlink
    const dangling = path.join(dir, 'dangling');
    fs.symlinkSync('nowhere', dangling);
    native.lutimesNs(dangling, 1, 1, 2, 2);
    assert.equal(fs.lstatSync(dangling, { bigint: true }).mtimeNs, 2_000_000_002n);
  });
});

test('widenPipe: a pipe grows to 1 MiB; anything else is left alone (undefined)', async () => {
  await withScratch((dir) => {
    const fifo = path.join(dir, 'p');
    execFileSync('mkfifo', [fifo]);
    const fd = fs.openSync(fifo, 'r+'); // read-write: open does not wait for the other end
    try {
      assert.equal(native.widenPipe(fd, 1 << 20), 1 << 20);
      // the kernel rounds up to a power of two pages
      assert.equal(native.widenPipe(fd, 100_000), 128 << 10);
    } finally {
      fs.closeSync(fd);
    }
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x');
    const ffd = fs.openSync(file, 'r');
    try {
      assert.equal(native.widenPipe(ffd, 1 << 20), undefined);
    } finally {
      fs.closeSync(ffd);
    }
  });
});

test('bpf device program bindings: load, query, errors with the bpf command and the verifier log', { skip: needRoot }, async () => {
  const u32 = (code: number, regs: number, off: number, imm: number) => {
    const b = Buffer.alloc(8);
    b.writeUInt8(code, 0);
    b.writeUInt8(regs, 1);
    b.writeInt16LE(off, 2);
    b.writeInt32LE(imm, 4);
    return b;
  };
  const allowAll = Buffer.concat([u32(0xb4, 0, 0, 1), u32(0x95, 0, 0, 0)]); // w0 = 1; exit
  const fd = native.bpfDeviceProgLoad(allowAll, 'GPL');
  try {
    assert.ok(fd > 0);
    assert.ok(native.bpfProgId(fd) > 0);
  } finally {
    fs.closeSync(fd);
  }
  // exit without setting r0: the verifier refuses, and says so in the log
  assert.throws(() => native.bpfDeviceProgLoad(u32(0x95, 0, 0, 0), 'GPL'), (e: unknown) => {
    const x = e as native.BpfLoadError;
    return native.isErrnoError(e, 'EACCES') && x.syscall === 'bpf(BPF_PROG_LOAD)' && /R0 !read_ok/.test(x.verifierLog ?? '');
  });
  await withScratch((dir) => {
    const dfd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      assertErrno(() => native.bpfDeviceProgQuery(dfd), 'EBADF', 'bpf(BPF_PROG_QUERY)');
    } finally {
      fs.closeSync(dfd);
    }
  });
  assertErrno(() => native.bpfProgFdById(0xfffffff0), 'ENOENT', 'bpf(BPF_PROG_GET_FD_BY_ID)');
  assert.throws(() => native.bpfDeviceProgLoad(Buffer.alloc(12), 'GPL'), RangeError);
  assert.throws(() => native.bpfDeviceProgLoad(Buffer.alloc(0), 'GPL'), RangeError);
  assert.throws(() => native.bpfDeviceProgLoad(allowAll, 'G\0PL'), TypeError);
  const any = native as unknown as Record<string, (...args: unknown[]) => unknown>;
  assert.throws(() => any['bpfDeviceProgLoad']!('insns', 'GPL'), TypeError);
  assert.throws(() => native.bpfDeviceProgAttach(-1, 3), RangeError);
  assert.throws(() => native.bpfDeviceProgAttach(3, 4, 0), RangeError);
});
