/**
 * Finding 9: the live copy of a running container's upper layer (sendTree,
 * live) while the container swaps a directory for a link to a host directory
 * holding a secret. A real overlayfs: the swap is made through the merged view,
 * as a process in the container makes it, at the moment the copy has listed
 * the directory and is about to read its entries (the include predicate, which
 * the copy calls for every entry, is the seam). The secret never reaches the
 * stream; the container's own data does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { StreamResult } from '../../../src/agent/api.js';
import * as native from '../../../src/native/native.js';
import { sendTree } from '../../../src/transfer/send.js';
import { indexTree } from '../../../src/transfer/upper-index.js';

const SECRET = 'HOST-SECRET-7f3a9c';

async function collect(data: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of data) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const cases = [
  { what: 'the directory being read', dir: 'a', file: 'a/secret', link: 'host' },
  { what: 'a grandparent of the file being read', dir: 'd1', file: 'd1/d2/secret', link: 'host' },
];

for (const c of cases) {
  test(`a running container swaps ${c.what} for a link to a host directory: the host's secret never reaches the stream`, { timeout: 60_000 }, async () => {
    const base = await fs.realpath(await fs.mkdtemp(path.join(tmpdir(), 'tsm-swap-')));
    const d = (p: string) => path.join(base, p);
    let mounted = false;
    try {
      for (const x of ['lower', 'upper', 'work', 'merged', 'host/d2']) await fs.mkdir(d(x), { recursive: true });
      await fs.writeFile(d('host/secret'), SECRET);
      await fs.writeFile(d('host/d2/secret'), SECRET);
      native.mountOverlay({ lower: [d('lower')], upper: d('upper'), work: d('work'), target: d('merged') });
      mounted = true;
      const M = (p: string) => path.join(d('merged'), p);
      await fs.mkdir(path.dirname(M(c.file)), { recursive: true });
      await fs.writeFile(M(c.file), `container-data-${c.dir}`);

      let swapped = false;
      const swapAt = (rel: string): boolean => {
        if (rel === c.file && !swapped) {
          // what a process in the container does: rename the directory away, a link in its place
          swapForLink(M(c.dir), d(c.link));
          swapped = true;
        }
        return true;
      };
      let wire: Buffer = Buffer.alloc(0);
      const call = async (data: Readable): Promise<StreamResult> => {
        wire = await collect(data);
        return { bytes: wire.length, digest: 'sha256:x' };
      };
      await sendTree(d('upper'), call, { zstd: false, live: true, include: swapAt });
      assert.equal(swapped, true, 'the swap happened during the copy');
      assert.ok((await fs.lstat(path.join(d('upper'), c.dir))).isSymbolicLink(), 'the upper layer now holds the link');
      assert.equal(wire.includes(SECRET), false, 'the host secret was read through the swapped link');
      assert.equal(wire.includes(`container-data-${c.dir}`), true, 'the container\'s own file (in the directory as it was opened) is sent');

      // and an index of the swapped tree lists the link, nothing of the host's
      const index = await indexTree(d('upper'));
      assert.equal([...index.keys()].some((k) => k.startsWith(`${c.dir}/`)), false, [...index.keys()].join(' '));
    } finally {
      if (mounted) native.umount(d('merged'), { detach: true });
      await fs.rm(base, { recursive: true, force: true });
    }
  });
}

/** Synchronous, so that it lands exactly between the copy's listing and its reads. */
function swapForLink(dir: string, target: string): void {
  renameSync(dir, `${dir}.moved`);
  symlinkSync(target, dir);
}
