/**
 * Paths the agent derives from what the wire or its records name stay beneath
 * their roots: container names and image digests are one component, a record's
 * staging is the migration's own, and a container named like an Object
 * property keeps its epoch.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MigrationRecords, type IncomingMigration } from '../../../src/agent/migrations.js';
import { LocalAgent } from '../../../src/agent/server.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { statePaths } from '../../../src/state/paths.js';
import { snapshot } from '../../helpers/tree-snapshot.js';
import { MID, beginReq } from './helpers.js';

const T = mkdtempSync(path.join(tmpdir(), 'tsm-wirepaths-'));
after(() => rmSync(T, { recursive: true, force: true }));

test('container names and image digests are one component beneath the state root', () => {
  const p = statePaths('/var/lib/tsm');
  assert.equal(p.container('web-1'), '/var/lib/tsm/containers/web-1');
  assert.equal(p.image(`sha256:${'a'.repeat(64)}`), `/var/lib/tsm/images/${'a'.repeat(64)}`);
  for (const bad of ['..', '.', '', 'a/b', '../../etc', 'x\0']) assert.throws(() => p.container(bad), /is not a name inside the containers directory/, bad);
  assert.throws(() => p.image('sha256:../../etc'), /is not a name inside the images directory/);
});

test("a record whose staging is not the migration's own is refused: an abort removes nothing", async () => {
  const root = path.join(T, 'staging');
  mkdirSync(root, { recursive: true });
  const victim = path.join(T, 'victim');
  mkdirSync(victim);
  writeFileSync(path.join(victim, 'keep'), 'keep\n');
  const rt = createRuntime({ root });
  const recs = new MigrationRecords(rt.paths);
  const m: IncomingMigration = { id: MID, name: 'web-1', epoch: 3, phase: 'receiving', begin: beginReq, received: { upper: [] }, staging: victim, updatedAt: '' };
  mkdirSync(recs.dir, { recursive: true });
  writeFileSync(path.join(recs.dir, `${MID}.json`), JSON.stringify(m));
  const before = await snapshot(victim);
  await assert.rejects(recs.get(MID), /is damaged: its staging "\S+victim" is not a staging directory of this migration/);
  await assert.rejects(new LocalAgent(rt, 'test').abort({ migrationId: MID }), /is damaged/);
  assert.deepEqual(await snapshot(victim), before);
  // the migration's own staging, a name of its own and its id: accepted
  const own = { ...m, staging: `/dev/shm/tsmigrate/move-${MID}-abc123` };
  writeFileSync(path.join(recs.dir, `${MID}.json`), JSON.stringify(own));
  assert.equal((await recs.get(MID))?.staging, own.staging);
  for (const bad of [{ ...own, name: '../../etc' }, { ...own, id: 'other-0123456789' }, { ...own, staging: `/tmp/../move-${MID}-x` }]) {
    writeFileSync(path.join(recs.dir, `${MID}.json`), JSON.stringify(bad));
    await assert.rejects(recs.get(MID), /is damaged/);
  }
  assert.equal(existsSync(victim), true);
});

test('a container named "constructor" keeps its epoch (the peer refuses older ones by it)', async () => {
  const root = path.join(T, 'epochs');
  mkdirSync(root, { recursive: true });
  const recs = new MigrationRecords(statePaths(root));
  assert.equal(await recs.seenEpoch('constructor'), 0);
  await recs.recordEpoch('constructor', 5);
  assert.equal(await recs.seenEpoch('constructor'), 5);
  const agent = new LocalAgent(createRuntime({ root }), 'test');
  assert.deepEqual(await agent.containerStatus({ name: 'constructor' }), { status: 'absent', epochSeen: 5 });
});
