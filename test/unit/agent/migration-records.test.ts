import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MigrationRecords, type IncomingMigration } from '../../../src/agent/migrations.js';
import { statePaths } from '../../../src/state/paths.js';

test("the peer's records follow the transition table: an aborted migration is never committed, a committed one never aborted", async () => {
  const recs = new MigrationRecords(statePaths(mkdtempSync(path.join(os.tmpdir(), 'tsm-recs-'))));
  const m = { id: 'm-20261206-aaaa0001', name: 'web', epoch: 1, phase: 'begun', begin: {}, received: { upper: [] }, updatedAt: '' } as unknown as IncomingMigration;
  await recs.save(m);
  for (const p of ['receiving', 'receiving', 'prepared', 'aborted'] as const) await recs.save({ ...m, phase: p });
  await assert.rejects(recs.save({ ...m, phase: 'committed' }), /is aborted here: it cannot become committed/);
  const n = { ...m, id: 'm-20261206-aaaa0002' };
  for (const p of ['begun', 'receiving', 'prepared', 'committed'] as const) await recs.save({ ...n, phase: p });
  await assert.rejects(recs.save({ ...n, phase: 'aborted' }), /cannot become aborted/);
  await assert.rejects(recs.save({ ...n, id: 'm-20261206-aaaa0003', phase: 'begun' }).then(() => recs.save({ ...n, id: 'm-20261206-aaaa0003', phase: 'prepared' })), /cannot become prepared/);
});
