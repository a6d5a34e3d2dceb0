import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffIndex, deltaFilter } from '../../src/transfer/upper-index.js';

const F = 0o100644;
const D = 0o40755;
const idx = (e: Record<string, [number, number]>) => new Map(Object.entries(e).map(([k, [mode, v]]) => [k, `${mode}:1:${v}:0:0:0:0`]));

test('delta: new, changed, deleted, type changes, top-most deletions', () => {
  const before = idx({ '': [D, 1], a: [D, 1], 'a/x': [F, 1], 'a/y': [F, 1], b: [D, 1], 'b/c': [D, 1], 'b/c/d': [F, 1], t: [F, 1] });
  const after = idx({ '': [D, 2], a: [D, 2], 'a/x': [F, 2], 'a/z': [F, 1], t: [D, 1], 't/new': [F, 1] });
  const d = diffIndex(before, after);
  assert.deepEqual([...d.changed].sort(), ['', 'a', 'a/x', 'a/z', 't', 't/new']);
  assert.deepEqual(d.deleted, ['a/y', 'b', 't']);
  const inc = deltaFilter({ changed: new Set(['a/x', 'q/r/s']), deleted: [] });
  assert.ok(inc('a') && inc('a/x') && inc('q') && inc('q/r') && inc('q/r/s'));
  assert.ok(!inc('a/y') && !inc('b'));
});
