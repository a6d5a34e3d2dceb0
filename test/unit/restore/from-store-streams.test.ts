/**
 * Finding 7, the fault path in milliseconds: a DR restore whose store stream
 * fails (swapped chunks) before the peer has started to read it, or while the
 * peer reads, or whose peer fails while the store still sends: one typed
 * error naming the chunk, no unhandled 'error' event, and what the restore
 * began on the target aborted (over a new connection when the first is gone).
 * The peer is a fake; the store is a real directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ChunkStore } from '../../../src/store/chunk-store.js';
import { LocalBackend } from '../../../src/store/local-backend.js';
import { craftMeta } from '../../helpers/store-craft.js';
import { restoreFromStore, type HostProbe } from '../../../src/restore/from-store.js';
import type { AgentApi, StreamResult } from '../../../src/agent/api.js';
import type { Runtime } from '../../../src/runtime/context.js';
import type { Signing } from '../../../src/sign/signing.js';
import { isTsmError, TsmError } from '../../../src/errors/errors.js';

async function* once(b: Buffer) {
  yield b;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A store holding one checkpoint of `web` whose upper stream's first and last chunks are swapped on disk. */
async function swappedStore(dir: string, swap = true): Promise<ChunkStore> {
  const backend = new LocalBackend(dir);
  const store = await ChunkStore.open(backend, { create: true, key: null, seen: null });
  const c = { logical: 0, chunks: 0, newChunks: 0, newBytes: 0 };
  const upper = await store.writeStream(once(randomBytes(1 << 20)), c);
  const criu = await store.writeStream(once(randomBytes(300_000)), c);
  const meta = craftMeta('web-20261206t080000z-abcdef', 'web', '2026-12-06T08:00:00.000Z', criu.ref, upper.ref);
  await store.commit({ meta, ids: { criu: criu.ids, upper: upper.ids } });
  if (!swap) return store;
  const n = upper.ids.length / 32;
  const [x, y] = [0, n - 1].map((i) => backend.chunkFile(upper.ids.subarray(i * 32, i * 32 + 32).toString('hex')));
  await fs.rename(x!, `${x}.t`);
  await fs.rename(y!, x!);
  await fs.rename(`${x}.t`, y!);
  return store;
}

interface Fake {
  probe: HostProbe;
  aborted: string[];
  connects: number;
}

/** A target whose putUpper starts reading only after `delayMs` (or fails by itself), whose first connection may lose abort. */
function target(o: { delayMs: number; peerFails?: boolean; firstAbortLost?: boolean }): Fake {
  const f: Fake = { aborted: [], connects: 0, probe: { name: 'peer', connect: async () => conn() } };
  const conn = () => {
    const n = ++f.connects;
    const agent = {
      hello: async () => ({ protocol: 0, challenge: 'c'.repeat(64) }),
      preflight: async () => ({ ok: true, problems: [], needImage: false, freeBytes: 1 << 30 }),
      begin: async () => ({ ok: true as const }),
      putUpper: async (_p: unknown, data: Readable): Promise<StreamResult> => {
        await sleep(o.delayMs);
        if (o.peerFails) throw new TsmError('ENOSPC', 'the peer\'s disk is full', { fix: 'free some' });
        let bytes = 0;
        for await (const c of data as AsyncIterable<Buffer>) bytes += c.length;
        return { bytes, digest: 'sha256:none' };
      },
      abort: async (p: { migrationId: string }) => {
        if (o.firstAbortLost && n === 1) throw new TsmError('EPEER', 'connection lost', { fix: 'retry' });
        f.aborted.push(p.migrationId);
        return { ok: true as const };
      },
    } as unknown as AgentApi;
    return { agent, close: async () => undefined };
  };
  return f;
}

// the signature checks are not what this test is about: a Signing that signs with a placeholder and accepts (sign/signing.ts has its own tests)
const signing: Signing = {
  sign: async (purpose) => ({ format: 'tsmigrate-signature/1', purpose, key: `tsmigrate-ed25519 ${Buffer.alloc(32).toString('base64')} test`, signature: Buffer.alloc(64).toString('base64') }),
  verify: async () => null,
};
const rt = { criuDeadline: {}, signing } as unknown as Runtime;

test('a store stream that fails before or while the peer reads, or a peer that fails: one typed error, the restore aborted on the target', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-fsst-'));
  try {
    const swapped = await swappedStore(path.join(dir, 'store'));
    const intact = await swappedStore(path.join(dir, 'intact'), false);
    for (const [label, store, o, expect] of [
      ['store fails before the peer reads', swapped, { delayMs: 80 }, /^chunk [0-9a-f]{12}… of checkpoint web-20261206t080000z-abcdef does not match its id$/],
      ['store fails while the peer reads', swapped, { delayMs: 0 }, /does not match its id/],
      ['peer fails, first abort lost', intact, { delayMs: 30, peerFails: true, firstAbortLost: true }, /^the peer's disk is full$/],
    ] as const) {
      const t = target(o);
      const warnings: string[] = [];
      await assert.rejects(
        restoreFromStore(rt, { name: 'web', selector: { kind: 'latest' }, store, target: t.probe, hosts: [], force: false, onWarning: (w) => warnings.push(w) }),
        (e) => isTsmError(e) && expect.test(e.message),
        label,
      );
      assert.equal(t.aborted.length, 1, `${label}: the target's half-done restore aborted`);
      assert.deepEqual(warnings, [], label);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
