import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CRIU_FEATURES,
  CRIU_MIN_VERSION,
  compareCriuVersion,
  criuCheck,
  criuFeature,
  locateCriu,
  probeCapabilities,
  probeFeatures,
} from '../../../src/criu/binary.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';

const notRoot = skipUnless(isRoot, 'needs root (criu check)');

test('locateCriu finds CRIU >= 4.2', async () => {
  const bin = await locateCriu(process.env);
  console.log(`criu: ${bin.path} version ${bin.versionText}`);
  assert.ok(compareCriuVersion(bin.version, CRIU_MIN_VERSION) >= 0, bin.versionText);
  assert.equal(await locateCriu(process.env), bin, 'cached');
});

test('criu check passes', { skip: notRoot }, async () => {
  const bin = await locateCriu(process.env);
  const r = await criuCheck(bin);
  assert.ok(r.ok, r.output);
  assert.match(r.output, /Looks good/);
});

test('criu features', { skip: notRoot }, async () => {
  const bin = await locateCriu(process.env);
  const dirty = await criuFeature(bin, 'mem_dirty_track');
  assert.equal(typeof dirty, 'boolean');
  console.log(`mem_dirty_track: ${dirty}`);
  const all = await probeFeatures(bin, CRIU_FEATURES);
  for (const name of CRIU_FEATURES) assert.equal(typeof all[name], 'boolean', name);
  assert.equal(all.mem_dirty_track, dirty);
  console.log(`features: ${JSON.stringify(all)}`);
  const caps = await probeCapabilities(bin);
  console.log(`capabilities: ${JSON.stringify(caps)}`);
  assert.equal(caps.lazyPages, all.uffd && all['uffd-noncoop']);
  await assert.rejects(criuFeature(bin, 'no_such_feature'), (e: unknown) => isTsmError(e, 'ECRIU'));
});
