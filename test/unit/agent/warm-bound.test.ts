/**
 * The agent's `warm` is bounded by what the move declared in `begin` (twice
 * its memory) and, across moves, by twice the host's memory: a client asking
 * for more is refused before anything is faulted in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MigrationRecords, type IncomingMigration } from '../../../src/agent/migrations.js';
import { LocalAgent } from '../../../src/agent/server.js';
import { warmRefusal } from '../../../src/agent/warm-bound.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { MID, beginReq } from './helpers.js';

const MiB = 1 << 20;
const GiB = 1 << 30;

test('warmRefusal: twice the declared memory, and twice the host memory across moves', () => {
  const rows: Array<[string, { requested: number; declaredMemory: number; heldElsewhere: number; hostMemory: number }, RegExp | undefined]> = [
    ['what the source asks (plan.ts: twice the memory)', { requested: 2 * GiB, declaredMemory: GiB, heldElsewhere: 0, hostMemory: 8 * GiB }, undefined],
    ['less', { requested: 1, declaredMemory: GiB, heldElsewhere: 0, hostMemory: 8 * GiB }, undefined],
    ['nothing, with nothing declared', { requested: 0, declaredMemory: 0, heldElsewhere: 0, hostMemory: 8 * GiB }, undefined],
    ['one byte past the declaration', { requested: 2 * GiB + 1, declaredMemory: GiB, heldElsewhere: 0, hostMemory: 8 * GiB }, /warm 2049 MiB, more than the 2048 MiB its move declared/],
    ['a byte with nothing declared', { requested: 1, declaredMemory: 0, heldElsewhere: 0, hostMemory: 8 * GiB }, /more than the 0 MiB/],
    ['any count (the finding)', { requested: Number.MAX_SAFE_INTEGER, declaredMemory: 64 * MiB, heldElsewhere: 0, hostMemory: 8 * GiB }, /more than the 128 MiB/],
    ['declared huge: the host cap', { requested: 20 * GiB, declaredMemory: 10 * GiB, heldElsewhere: 0, hostMemory: 8 * GiB }, /pass this peer's cap of 16384 MiB/],
    ['other moves already warm: the host cap', { requested: 2 * GiB, declaredMemory: GiB, heldElsewhere: 15 * GiB, hostMemory: 8 * GiB }, /15360 MiB already warm for other moves/],
    ['other moves warm, still under the cap', { requested: 2 * GiB, declaredMemory: GiB, heldElsewhere: 14 * GiB, hostMemory: 8 * GiB }, undefined],
  ];
  for (const [label, facts, want] of rows) {
    const r = warmRefusal(facts);
    if (!want) assert.equal(r, undefined, label);
    else {
      assert.ok(r && isTsmError(r, 'EPROTO'), label);
      assert.match(r.oneLine(), want, label);
      assert.match(r.oneLine(), /nothing was warmed/, label);
    }
  }
});

test('a real agent: warm within the declared size works; past it, or with nothing declared, it is refused before anything is faulted in', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-warm-'));
  const rt = createRuntime({ root });
  const agent = new LocalAgent(rt, 'test');
  try {
    const records = new MigrationRecords(rt.paths);
    // a staging directory of the migration's own (records naming another are refused)
    const staging = (id: string) => {
      const d = path.join(root, `move-${id}-x`);
      mkdirSync(d, { recursive: true, mode: 0o700 });
      return d;
    };
    const begun = (id: string, memoryBytes: number | undefined): IncomingMigration => ({
      id, name: 'web-1', epoch: 3, phase: 'begun', begin: { ...beginReq, migrationId: id, ...(memoryBytes === undefined ? {} : { memoryBytes }) }, received: { upper: [] }, staging: staging(id), updatedAt: '',
    });
    await records.save(begun(MID, 4 * MiB));
    const ok = await agent.warm({ migrationId: MID, bytes: 8 * MiB });
    assert.ok(ok.bytes > 0 && ok.bytes <= 8 * MiB, JSON.stringify(ok));
    await assert.rejects(agent.warm({ migrationId: MID, bytes: 8 * MiB + 1 }), (e: Error) => isTsmError(e, 'EPROTO') && /more than the 8 MiB its move declared/.test(e.message));
    await assert.rejects(agent.warm({ migrationId: MID, bytes: 2 ** 50 }), (e: Error) => isTsmError(e, 'EPROTO'));
    const other = 'mig-0123456780';
    await records.save(begun(other, undefined));
    await assert.rejects(agent.warm({ migrationId: other, bytes: 1 }), (e: Error) => isTsmError(e, 'EPROTO') && /more than the 0 MiB/.test(e.message));
  } finally {
    await agent.onDisconnect().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
});
