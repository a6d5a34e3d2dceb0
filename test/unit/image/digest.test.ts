import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { extractTar } from '../../../src/archive/safe-extract.js';
import { devMajorMinor, digestTree } from '../../../src/image/digest.js';

const isRoot = process.getuid?.() === 0;
const temps: string[] = [];
after(async () => {
  for (const t of temps) await fs.rm(t, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await fs.mkdtemp(path.join(tmpdir(), 'tsm-digest-'));
  temps.push(d);
  return d;
}

/** A small tree with every kind of entry the digest covers. */
async function makeTree(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755);
  await fs.mkdir(path.join(dir, 'bin'));
  await fs.mkdir(path.join(dir, 'etc/conf.d'), { recursive: true });
  await fs.writeFile(path.join(dir, 'bin/tool'), '#!/bin/sh\necho hi\n');
  await fs.chmod(path.join(dir, 'bin/tool'), 0o4755);
  await fs.symlink('tool', path.join(dir, 'bin/sh'));
  await fs.writeFile(path.join(dir, 'etc/hostname'), 'box\n');
  await fs.writeFile(path.join(dir, 'etc/conf.d/a.conf'), 'x=1\n');
  await fs.writeFile(path.join(dir, 'etc/empty'), '');
  await fs.link(path.join(dir, 'etc/hostname'), path.join(dir, 'etc/hostname.hard'));
  // Names whose order differs between per-directory and whole-path sorting.
  await fs.writeFile(path.join(dir, 'etc.x'), '1');
  await fs.writeFile(path.join(dir, 'etc-x'), '2');
  await execa('mkfifo', ['-m', '600', path.join(dir, 'etc/fifo')]);
  if (isRoot) await fs.lchown(path.join(dir, 'etc/conf.d/a.conf'), 1000, 1000);
}

async function copyOf(src: string): Promise<string> {
  const d = await tmp();
  await execa('cp', ['-a', `${src}/.`, `${d}/`]);
  return d;
}

test('the same tree from a directory copy and from a tar has the same digest', async () => {
  const src = await tmp();
  await makeTree(src);
  const a = await digestTree(src);
  assert.match(a.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(a.files, 12);
  // Hard-linked content counted once.
  assert.equal(a.size, 18 + 4 + 4 + 0 + 1 + 1);

  const copied = await copyOf(src);
  assert.equal((await digestTree(copied)).digest, a.digest);

  const tarFile = path.join(await tmp(), 'tree.tar');
  await execa('tar', ['-C', src, '-cf', tarFile, '.']);
  const extracted = await tmp();
  await extractTar(createReadStream(tarFile), extracted);
  assert.equal((await digestTree(extracted)).digest, a.digest);

  // Timestamps are not part of it.
  await fs.utimes(path.join(extracted, 'etc/hostname'), new Date(0), new Date(0));
  await fs.utimes(extracted, new Date(0), new Date(0));
  assert.equal((await digestTree(extracted)).digest, a.digest);
});

test('mode, owner, content, symlink target and names change the digest', async () => {
  const src = await tmp();
  await makeTree(src);
  const base = (await digestTree(src)).digest;
  const changes: Array<[string, (d: string) => Promise<unknown>]> = [
    ['mode', (d) => fs.chmod(path.join(d, 'bin/tool'), 0o755)],
    ['dir mode', (d) => fs.chmod(path.join(d, 'etc'), 0o700)],
    ['root mode', (d) => fs.chmod(d, 0o700)],
    ['content', (d) => fs.writeFile(path.join(d, 'etc/conf.d/a.conf'), 'x=2\n')],
    ['content, same size', (d) => fs.writeFile(path.join(d, 'etc/hostname.hard'), 'BOX\n')],
    ['symlink target', async (d) => {
      await fs.unlink(path.join(d, 'bin/sh'));
      await fs.symlink('/bin/tool', path.join(d, 'bin/sh'));
    }],
    ['symlink -> file', async (d) => {
      await fs.unlink(path.join(d, 'bin/sh'));
      await fs.writeFile(path.join(d, 'bin/sh'), 'tool');
    }],
    ['rename', (d) => fs.rename(path.join(d, 'etc/empty'), path.join(d, 'etc/empty2'))],
    ['new empty dir', (d) => fs.mkdir(path.join(d, 'var'))],
  ];
  if (isRoot) {
    changes.push(['owner', (d) => fs.lchown(path.join(d, 'etc/hostname'), 0, 1)]);
    changes.push(['symlink owner', (d) => fs.lchown(path.join(d, 'bin/sh'), 5, 5)]);
    changes.push(['device', (d) => execa('mknod', [path.join(d, 'etc/null'), 'c', '1', '3'])]);
  }
  const seen = new Set([base]);
  for (const [what, change] of changes) {
    const d = await copyOf(src);
    assert.equal((await digestTree(d)).digest, base, `copy before ${what}`);
    await change(d);
    const got = (await digestTree(d)).digest;
    assert.notEqual(got, base, what);
    assert.ok(!seen.has(got), `${what} gives a digest of its own`);
    seen.add(got);
  }
});

test('device numbers are part of the digest', { skip: !isRoot && 'needs root (mknod)' }, async () => {
  const a = await tmp();
  const b = await tmp();
  await execa('mknod', [path.join(a, 'dev'), 'c', '1', '3']);
  await execa('mknod', [path.join(b, 'dev'), 'c', '1', '5']);
  assert.notEqual((await digestTree(a)).digest, (await digestTree(b)).digest);
  const st = await fs.lstat(path.join(b, 'dev'), { bigint: true });
  assert.deepEqual(devMajorMinor(st.rdev), { major: 1n, minor: 5n });
});

test('devMajorMinor decodes large numbers', () => {
  // makedev(259, 1048575) per glibc
  const major = 259n;
  const minor = 1048575n;
  const rdev = ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
  assert.deepEqual(devMajorMinor(rdev), { major, minor });
});
