/**
 * Property test over safe extraction (fast-check; TSMIGRATE_FUZZ_RUNS=N for a
 * long run): random sequences of tar entries (files, directories, symlinks
 * pointing in and out, hard links, fifos; names with "..", ".", empty and
 * absolute parts; duplicates) extracted from real tar streams into a real
 * directory. Whatever the archive, extraction either succeeds or fails with a
 * TsmError, never writes outside the target, and never follows a link: every
 * path in the target is one the archive named (or a parent of one).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { extractTar } from '../../../src/archive/safe-extract.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { tarOf, type Entry } from '../../helpers/bombs.js';
import { fuzzRuns } from '../../helpers/fuzz.js';

const base = await fs.mkdtemp(path.join(tmpdir(), 'tsm-prop-'));
after(() => fs.rm(base, { recursive: true, force: true }));
const outside = path.join(base, 'outside');

const component = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('a', 'b', 'c') }, { weight: 1, arbitrary: fc.constantFrom('..', '.', '') });
const lead = fc.oneof({ weight: 8, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('/', './') });
const name = fc
  .tuple(lead, fc.array(component, { minLength: 1, maxLength: 3 }))
  .map(([lead, parts]) => lead + parts.join('/'));
const linkTarget = fc.oneof(name, fc.constantFrom(outside, `${outside}/victim`, '../outside', '/etc', 'a'));
const entry: fc.Arbitrary<Entry> = fc.oneof(
  fc.record({ name, body: fc.constantFrom('x', 'yy', '') }),
  name.map((n) => ({ name: n, type: 'directory' as const, mode: 0o755 })),
  fc.tuple(name, linkTarget).map(([n, t]) => ({ name: n, type: 'symlink' as const, linkname: t })),
  fc.tuple(name, name).map(([n, t]) => ({ name: n, type: 'link' as const, linkname: t })),
  name.map((n) => ({ name: n, type: 'fifo' as const })),
);

/** What the extractor makes of a name (null: refused). */
function parts(n: string): string[] | null {
  if (n.startsWith('/')) return null;
  const p = n.split('/').filter((x) => x !== '' && x !== '.');
  return p.includes('..') ? null : p;
}

/** Every path under `dir`, relative, never following a link. */
function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`;
    out.push(r);
    if (e.isDirectory()) out.push(...walk(dir, r));
  }
  return out;
}

let run = 0;
let wrote = 0;
test('safe extraction never writes outside the target and never follows a link', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 10 }), async (entries) => {
      await fs.rm(outside, { recursive: true, force: true });
      await fs.mkdir(path.join(outside, 'dir'), { recursive: true });
      await fs.writeFile(path.join(outside, 'victim'), 'v', { mode: 0o644 });
      const target = path.join(base, `t${run++}`);
      try {
        await extractTar(tarOf(entries), target).catch((e: unknown) => {
          if (!isTsmError(e)) throw e;
        });
        // outside: exactly as it was
        assert.deepEqual(walk(outside).sort(), ['dir', 'victim']);
        assert.equal(readFileSync(path.join(outside, 'victim'), 'utf8'), 'v');
        assert.equal(lstatSync(path.join(outside, 'victim')).mode & 0o7777, 0o644);
        assert.deepEqual(readdirSync(base).filter((n) => n !== 'outside' && !n.startsWith('t')), []);
        // inside: only what the archive named, and parents of it (a write through a link would add another path)
        const named = new Set<string>();
        for (const e of entries) {
          const p = parts(e.name);
          if (p) for (let i = 1; i <= p.length; i++) named.add(p.slice(0, i).join('/'));
        }
        const found = walk(target);
        if (found.length > 0) wrote++;
        for (const rel of found) assert.ok(named.has(rel), `${rel} was not in the archive: ${JSON.stringify(entries)}`);
      } finally {
        await fs.rm(target, { recursive: true, force: true });
      }
    }),
    { numRuns: fuzzRuns(200) },
  );
  // the property is not vacuous: many archives did write something
  assert.ok(wrote > run / 4, `${wrote} of ${run} archives wrote anything`);
});
