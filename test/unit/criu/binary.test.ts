import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  compareCriuVersion,
  criuCheck,
  criuFeature,
  locateCriu,
  parseCriuVersion,
  probeFeatures,
  resetCriuCache,
  type CriuVersion,
} from '../../../src/criu/binary.js';
import { isTsmError } from '../../../src/errors/errors.js';

test('parseCriuVersion', () => {
  const table: Array<[string, CriuVersion | null]> = [
    ['Version: 4.2.1\n', { major: 4, minor: 2, patch: 1 }],
    ['Version: 3.17\nGitID: v3.17\n', { major: 3, minor: 17, patch: 0 }],
    ['Version: 4.2\n', { major: 4, minor: 2, patch: 0 }],
    ['Version: 4.1.1\nGitID: v4.1.1-12-gdeadbeef\n', { major: 4, minor: 1, patch: 1 }],
    ['Warn: something\n  Version:   10.0.3 \n', { major: 10, minor: 0, patch: 3 }],
    ['', null],
    ['criu: command not found', null],
    ['Version: four', null],
    ['Version: 4\n', null],
  ];
  for (const [text, want] of table) assert.deepEqual(parseCriuVersion(text), want, JSON.stringify(text));
});

test('compareCriuVersion', () => {
  const v = (major: number, minor: number, patch: number): CriuVersion => ({ major, minor, patch });
  assert.ok(compareCriuVersion(v(4, 2, 0), v(4, 2, 0)) === 0);
  assert.ok(compareCriuVersion(v(4, 2, 1), v(4, 2, 0)) > 0);
  assert.ok(compareCriuVersion(v(4, 1, 9), v(4, 2, 0)) < 0);
  assert.ok(compareCriuVersion(v(3, 17, 0), v(4, 2, 0)) < 0);
  assert.ok(compareCriuVersion(v(5, 0, 0), v(4, 2, 0)) > 0);
});

/** A fake criu: a sh script in a fresh temp dir. */
async function withFakeCriu(script: string | null, fn: (criuPath: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsm-fake-criu-'));
  const p = path.join(dir, 'criu');
  try {
    if (script !== null) {
      await writeFile(p, `#!/bin/sh\n${script}\n`);
      await chmod(p, 0o755);
    }
    resetCriuCache();
    await fn(p);
  } finally {
    resetCriuCache();
    await rm(dir, { recursive: true, force: true });
  }
}

test('locateCriu: CRIU 3.17 => ECRIU_TOO_OLD naming the version', async () => {
  await withFakeCriu('echo "Version: 3.17"; echo "GitID: v3.17"', async (p) => {
    await assert.rejects(locateCriu({ TSMIGRATE_CRIU: p, PATH: '/usr/bin:/bin' }), (e: unknown) => {
      assert.ok(isTsmError(e, 'ECRIU_TOO_OLD'), String(e));
      assert.match(e.message, /3\.17/);
      assert.match(e.message, /4\.2/);
      assert.match(e.fix ?? '', /setup\.sh/);
      return true;
    });
  });
});

test('locateCriu: missing TSMIGRATE_CRIU => ECRIU_MISSING (no fallback)', async () => {
  await withFakeCriu(null, async (p) => {
    await assert.rejects(locateCriu({ TSMIGRATE_CRIU: p, PATH: '/usr/bin:/bin' }), (e: unknown) => {
      assert.ok(isTsmError(e, 'ECRIU_MISSING'), String(e));
      assert.match(e.message, /CRIU is not installed/);
      assert.equal(e.fix, 'run scripts/setup.sh as root (installs CRIU 4.2+)');
      return true;
    });
  });
});

test('locateCriu: a criu that does not run => ECRIU_MISSING saying so', async () => {
  await withFakeCriu('echo "segfault" >&2; exit 139', async (p) => {
    await assert.rejects(locateCriu({ TSMIGRATE_CRIU: p }), (e: unknown) => {
      assert.ok(isTsmError(e, 'ECRIU_MISSING'), String(e));
      assert.match(e.message, /not runnable/);
      return true;
    });
  });
});

test('locateCriu: CRIU 4.2.1 is accepted and cached; a failure is not cached', async () => {
  await withFakeCriu('echo "Version: 4.2.1"', async (p) => {
    const env = { TSMIGRATE_CRIU: p, PATH: '/usr/bin:/bin' };
    const a = locateCriu(env);
    const bin = await a;
    assert.deepEqual(bin, { path: p, version: { major: 4, minor: 2, patch: 1 }, versionText: '4.2.1' });
    assert.equal(locateCriu({ ...env }), a, 'second call returns the cached promise');

    const missing = { TSMIGRATE_CRIU: `${p}.nope`, PATH: '/usr/bin:/bin' };
    const first = locateCriu(missing);
    await assert.rejects(first);
    assert.notEqual(locateCriu(missing), first, 'failures are retried');
    await assert.rejects(locateCriu(missing));
  });
});

test('locateCriu: 5.0 (no patch) is accepted', async () => {
  await withFakeCriu('echo "Version: 5.0"', async (p) => {
    const bin = await locateCriu({ TSMIGRATE_CRIU: p });
    assert.deepEqual(bin.version, { major: 5, minor: 0, patch: 0 });
    assert.equal(bin.versionText, '5.0');
  });
});

const FAKE_CHECK = `
case "$1" in
  --version) echo "Version: 4.2.1" ;;
  check)
    if [ "$2" = --feature ]; then
      case "$3" in
        timens|uffd) echo "$3 is supported"; exit 0 ;;
        mem_dirty_track) echo "Warn: Dirty tracking is OFF." >&2; exit 1 ;;
        *) echo "Error (criu/cr-check.c:1901): Unknown feature $3" >&2; exit 1 ;;
      esac
    fi
    echo "Warn  (criu/cr-check.c:1595): Hardware breakpoints don't seem to work" >&2
    echo "Looks good."
    ;;
esac`;

test('criuCheck / criuFeature / probeFeatures against a fake criu', async () => {
  await withFakeCriu(FAKE_CHECK, async (p) => {
    const bin = await locateCriu({ TSMIGRATE_CRIU: p });
    const c = await criuCheck(bin);
    assert.equal(c.ok, true);
    assert.match(c.output, /Hardware breakpoints/);
    assert.equal(await criuFeature(bin, 'timens'), true);
    assert.equal(await criuFeature(bin, 'mem_dirty_track'), false);
    await assert.rejects(criuFeature(bin, 'lazy_pages'), (e: unknown) => isTsmError(e, 'ECRIU'));
    await assert.rejects(criuFeature(bin, '--all'), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
    assert.deepEqual(await probeFeatures(bin, ['timens', 'uffd', 'mem_dirty_track']), {
      timens: true,
      uffd: true,
      mem_dirty_track: false,
    });
  });
});

test('criuCheck: failing check => ok false', async () => {
  await withFakeCriu('[ "$1" = --version ] && { echo "Version: 4.2.1"; exit 0; }; echo "Error: no kernel support" >&2; exit 1', async (p) => {
    const bin = await locateCriu({ TSMIGRATE_CRIU: p });
    const c = await criuCheck(bin);
    assert.equal(c.ok, false);
    assert.match(c.output, /no kernel support/);
  });
});
