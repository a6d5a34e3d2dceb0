/**
 * A decompression bomb sent to the agent's putUpper (issue 16, finding 4): the
 * real LocalAgent (on a temp state root) served over a socket pair, a client
 * sending a zstd tar that expands to 1.5 GiB. The stream stops at the bound the
 * migration declared (or a small one when it declared none), with bounded
 * memory and little written, and the client gets one line back.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MigrationRecords } from '../../../src/agent/migrations.js';
import { LocalAgent } from '../../../src/agent/server.js';
import { createRuntime } from '../../../src/runtime/context.js';
import { Readable } from 'node:stream';
import { bufferOf, counted, GiB, MiB, tarOf, zstdOf, type Entry } from '../../helpers/bombs.js';
import { MID, beginReq, fakeAgent, setup } from './helpers.js';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A real agent with a begun migration of "web-1" that declared `upperBytes`, reached through a client. */
async function agentWith(upperBytes: number | undefined) {
  const root = mkdtempSync(path.join(tmpdir(), 'tsm-bomb-'));
  roots.push(root);
  const rt = createRuntime({ root });
  await new MigrationRecords(rt.paths).save({
    id: MID, name: 'web-1', epoch: 3, phase: 'begun', begin: { ...beginReq, ...(upperBytes === undefined ? {} : { upperBytes }) }, received: { upper: [] }, updatedAt: '',
  });
  const agent = new LocalAgent(rt, 'test');
  const t = await setup(fakeAgent({ putUpper: (p, d) => agent.putUpper(p, d) }));
  return { t, upper: path.join(rt.paths.container('web-1'), 'rootfs', 'upper') };
}

function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(path.join(e.parentPath, e.name)).size;
  return n;
}

const cases: Array<[string, number | undefined, Entry[], number, RegExp]> = [
  ['one 1.5 GiB file, 1 MiB declared', MiB, [{ name: './', type: 'directory', mode: 0o755 }, { name: 'big', body: { zeros: 1.5 * GiB } }], 66 * MiB, /expands to more than 69206016 bytes/],
  ['192 files of 8 MiB, nothing declared', undefined, [{ name: './', type: 'directory', mode: 0o755 }, ...Array.from({ length: 192 }, (_, i) => ({ name: `f${i}`, body: { zeros: 8 * MiB } }))], 64 * MiB, /expands to more than 67108864 bytes/],
];

for (const [what, declared, entries, bound, want] of cases) {
  test(`putUpper refuses a zstd bomb early (${what})`, async () => {
    const bomb = await zstdOf(tarOf(entries));
    assert.ok(bomb.length < 200 * 1024, `the bomb is ${bomb.length} bytes`);
    const { t, upper } = await agentWith(declared);
    try {
      global.gc?.();
      const base = process.memoryUsage().rss;
      let peak = base;
      const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
      const t0 = performance.now();
      const err = await t.client.putUpper({ migrationId: MID, phase: 'base', deleted: [], compression: 'zstd' }, counted(bomb)).then(() => undefined, (e: Error) => e);
      const ms = performance.now() - t0;
      clearInterval(timer);
      assert.ok(err, 'refused');
      assert.match(err.message, /refused the upper layer of migration mig-0123456789: it /);
      assert.match(err.message, want);
      assert.ok(!err.message.includes('\n'));
      assert.ok(bytesUnder(upper) <= bound, `${bytesUnder(upper)} bytes written`);
      assert.ok(ms < 5000, `${ms} ms`);
      assert.ok(peak - base < 192 * MiB, `RSS grew ${((peak - base) / MiB).toFixed(0)} MiB`);
    } finally {
      await t.cleanup();
    }
  });
}

test('putUpper refuses a stream that goes on after its archive ends (the sender is stopped)', async () => {
  const tarBytes = await bufferOf(tarOf([{ name: './', type: 'directory', mode: 0o755 }, { name: 'f', body: 'x' }]));
  let sent = 0;
  const endless = Readable.from((function* () {
    yield tarBytes;
    for (;;) {
      sent += 64 * 1024;
      yield Buffer.alloc(64 * 1024);
    }
  })());
  const { t } = await agentWith(MiB);
  try {
    const err = await t.client.putUpper({ migrationId: MID, phase: 'base', deleted: [], compression: 'none' }, endless).then(() => undefined, (e: Error) => e);
    assert.match(err?.message ?? '', /refused the upper layer of migration mig-0123456789: it holds more than \d+ bytes of headers and padding for 2 entries/);
    assert.ok(sent < 64 * MiB, `${sent} bytes sent`);
  } finally {
    await t.cleanup();
  }
});
