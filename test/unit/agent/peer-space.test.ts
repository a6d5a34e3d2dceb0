import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MARGIN_FIXED, MARGIN_FRACTION, peerSpaceNeeds, planSpace, spaceLine, spaceProblem, type FilesystemFacts } from '../../../src/agent/peer-space.js';

const MiB = 1 << 20;
const dirs = { staging: '/var/lib/tsm/staging', containers: '/var/lib/tsm/containers', images: '/var/lib/tsm/images' };
const margin = (sum: number) => MARGIN_FIXED + Math.ceil(sum * MARGIN_FRACTION);

/** A table of mounts: the longest prefix wins, as on a host. */
function mounts(table: Array<{ at: string; id: string; free: number; tmpfs?: boolean }>): (dir: string) => FilesystemFacts {
  return (dir) => {
    const m = table.filter((t) => dir === t.at || dir.startsWith(`${t.at}/`) || t.at === '/').sort((a, b) => b.at.length - a.at.length)[0]!;
    return { id: m.id, mountPoint: m.at, tmpfs: Boolean(m.tmpfs), freeBytes: m.free };
  };
}

test('peerSpaceNeeds: images to staging, upper layer and logs under containers, a missing image twice (tar and unpacked)', () => {
  const f = { memoryBytes: 100 * MiB, upperBytes: 20 * MiB, logBytes: 1 * MiB, imageBytes: 30 * MiB };
  assert.deepEqual(peerSpaceNeeds({ ...f, needImage: true }, dirs), [
    { what: 'memory images', bytes: 100 * MiB, dir: dirs.staging },
    { what: 'upper layer', bytes: 20 * MiB, dir: dirs.containers },
    { what: 'logs', bytes: 1 * MiB, dir: dirs.containers },
    { what: 'image', bytes: 60 * MiB, dir: dirs.images },
  ]);
  assert.equal(peerSpaceNeeds({ ...f, needImage: false }, dirs).some((n) => n.what === 'image'), false, 'an image the peer has costs nothing');
});

test('planSpace: everything on one filesystem is summed against its free space, with the margin', () => {
  const needs = peerSpaceNeeds({ memoryBytes: 100 * MiB, upperBytes: 20 * MiB, logBytes: 1 * MiB, imageBytes: 30 * MiB, needImage: true }, dirs);
  const sum = 181 * MiB;
  const rows: Array<[string, number, boolean]> = [
    ['fits with room', 1 << 30, true],
    ['fits exactly', sum + margin(sum), true],
    ['one byte short', sum + margin(sum) - 1, false],
    // each item alone would fit: the old check looked at the upper layer only
    ['each item fits alone, not all together', 150 * MiB, false],
  ];
  for (const [label, free, fits] of rows) {
    const [u, ...rest] = planSpace(needs, mounts([{ at: '/', id: 'root', free }]));
    assert.equal(rest.length, 0, label);
    assert.equal(u!.needBytes, sum + margin(sum), label);
    assert.equal(u!.freeBytes, free, label);
    assert.equal(u!.fits, fits, label);
  }
});

test('planSpace: images on a tmpfs and the rest on disk are counted apart; a bind mount of one filesystem shares its space', () => {
  const needs = peerSpaceNeeds({ memoryBytes: 512 * MiB, upperBytes: 10 * MiB, logBytes: 0, imageBytes: 5 * MiB, needImage: true }, { ...dirs, staging: '/dev/shm/tsmigrate' });
  const split = planSpace(needs, mounts([{ at: '/', id: 'vda', free: 100 * MiB }, { at: '/dev/shm', id: 'shm', free: 600 * MiB, tmpfs: true }]));
  assert.deepEqual(split.map((u) => [u.mountPoint, u.tmpfs, u.needBytes, u.fits]), [
    ['/dev/shm', true, 512 * MiB + margin(512 * MiB), false],
    ['/', false, 20 * MiB + margin(20 * MiB), true],
  ]);
  // the state root's images directory bind-mounted from the same disk: one filesystem, one sum
  const bound = planSpace(
    peerSpaceNeeds({ memoryBytes: 40 * MiB, upperBytes: 40 * MiB, logBytes: 0, imageBytes: 0, needImage: false }, dirs),
    mounts([{ at: '/', id: 'vda', free: 150 * MiB }, { at: '/var/lib/tsm/staging', id: 'vda', free: 150 * MiB }]),
  );
  assert.equal(bound.length, 1);
  assert.deepEqual(bound[0]!.items, [{ what: 'memory images', bytes: 40 * MiB }, { what: 'upper layer', bytes: 40 * MiB }, { what: 'logs', bytes: 0 }]);
  assert.equal(bound[0]!.fits, false, '80 MiB and the margin do not fit in 150 MiB');
});

test('spaceProblem names the filesystem, what is needed and what is free in MiB, and the fix', () => {
  const [u] = planSpace(
    peerSpaceNeeds({ memoryBytes: 64 * MiB, upperBytes: 40 * MiB + 1, logBytes: 0, imageBytes: 2 * MiB, needImage: true }, dirs),
    mounts([{ at: '/var/lib/tsm', id: 'small', free: 32 * MiB + 5, tmpfs: true }, { at: '/', id: 'vda', free: 1 << 40 }]),
  );
  const need = 64 * MiB + 40 * MiB + 1 + 4 * MiB;
  const p = spaceProblem(u!);
  assert.equal(p.check, 'disk');
  assert.equal(
    p.message,
    `the peer's tmpfs at /var/lib/tsm has 32 MiB free, the move needs ${Math.ceil((need + margin(need)) / MiB)} MiB there (memory images 64 MiB, upper layer 41 MiB, image 4 MiB, margin ${Math.ceil(margin(need) / MiB)} MiB)`,
  );
  assert.match(p.fix, /^free at least \d+ MiB under \/var\/lib\/tsm on the peer, or set the peer's TSMIGRATE_STAGING to a directory on a filesystem with room for the memory images, or move the container to another host$/);
  assert.match(spaceLine(u!), /^\/var\/lib\/tsm \(tmpfs\): needs \d+ MiB \(memory images 64 \+ upper layer 41 \+ logs 0 \+ image 4 \+ margin \d+\), 32 MiB free: DOES NOT FIT$/);
});

test('a full disk during the move: found through wrapped errors, named by the failed path or the fullest directory', async () => {
  const { isNoSpace, noSpaceError, guardSpace } = await import('../../../src/agent/space-errors.js');
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', path: '/var/lib/tsm/staging/move-1/images/pages-1.img' });
  assert.equal(isNoSpace(enospc), true);
  assert.equal(isNoSpace(new Error('stream failed', { cause: new Error('x', { cause: enospc }) })), true, 'wrapped');
  assert.equal(isNoSpace(new Error('criu: write failed: No space left on device')), true, 'from a message');
  assert.equal(isNoSpace(Object.assign(new Error('EIO'), { code: 'EIO' })), false);
  const fsOf = mounts([{ at: '/', id: 'vda', free: 900 * MiB }, { at: '/var/lib/tsm/staging', id: 'small', free: 0, tmpfs: true }]);
  const e = noSpaceError(enospc, ['/var/lib/tsm/containers'], fsOf);
  assert.equal(e.code, 'ENOSPC');
  assert.match(e.message, /^no space left on the peer's tmpfs at \/var\/lib\/tsm\/staging \(0 MiB free now\)/);
  assert.match(e.fix!, /rolled back .*free space under \/var\/lib\/tsm\/staging on the peer/);
  // no path in the error: the fullest of the move's directories
  assert.match(noSpaceError(new Error('No space left on device'), ['/var/lib/tsm/containers', '/var/lib/tsm/staging/move-1'], fsOf).message, /tmpfs at \/var\/lib\/tsm\/staging /);
  // guardSpace: only a full disk is turned into it, other errors pass unchanged
  const agent = {
    async put(p: { fail: Error }): Promise<void> {
      throw p.fail;
    },
  };
  guardSpace(agent, ['put'], async () => ['/var/lib/tsm/staging']);
  await assert.rejects(agent.put({ fail: enospc }), (x: Error & { code?: string }) => x.code === 'ENOSPC' && /no space left on the peer's/.test(x.message));
  const other = new Error('boom');
  await assert.rejects(agent.put({ fail: other }), (x: Error) => x === other);
});
