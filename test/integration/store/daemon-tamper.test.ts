/**
 * The daemon's "verify, then prune" against a store host that alters chunks
 * and recomputes their checksums (finding 6): the new checkpoint reuses the
 * altered chunks, the keyed verify fails, and nothing is pruned. The old
 * check (the store host's checksums) passed it and pruned the older
 * checkpoint. Real daemon, real CRIU, a real encrypted store directory.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { exited, startDaemon } from '../../helpers/daemon.js';
import { importBusybox } from '../../helpers/images.js';

const root = tempRoot('tsm-dtam-');
const DIR = path.join(root, 'enc-store');
const KEY = path.join(root, 'store.key');
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 120000 });
// a static 1 MiB file: every checkpoint's upper stream shares its chunks with the one before
const work = ['sh', '-c', 'dd if=/dev/urandom of=/static bs=64k count=16 2>/dev/null; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'];
let logs = '';

after(async () => {
  await cli(root, ['rm', '-f', 'dtam']);
  rmSync(root, { recursive: true, force: true });
});

const daemon = (): ChildProcess => startDaemon(root, (d) => (logs += d));
async function stop(d: ChildProcess): Promise<void> {
  d.kill('SIGTERM');
  await exited(d);
}
const runs = () => [...logs.matchAll(/schedule dtam: (dtam-\S+) \(frozen/g)].map((m) => m[1]!);
const ids = async () => (JSON.parse(await T(['--json', 'store', 'ls', 'dtam', '--store', DIR, '--encrypt-key', KEY])) as { checkpoints: Array<{ id: string }> }).checkpoints.map((c) => c.id);

test('the daemon verifies with the key before it prunes: a tampered store prunes nothing', async () => {
  await importBusybox(root);
  await T(['store', 'keygen', KEY]);
  await T(['run', '-d', 'dtam', '--image', 'busybox', '--', ...work]);
  await eventually(async () => existsSync(path.join(root, 'containers/dtam/rootfs/upper/tmp/count')), 20000);
  await T(['schedule', 'add', 'dtam', '--every', '2s', '--keep-last', '1', '--store', DIR, '--encrypt-key', KEY]);

  let d = daemon();
  await eventually(async () => runs().length >= 1, 120000, 100);
  await stop(d);
  const before = await ids();
  assert.equal(before.length, 1, `keep-last 1: ${before.join(', ')}`);

  // the store host alters every chunk it holds and recomputes each checksum
  for (const f of (await fs.readdir(path.join(DIR, 'chunks'), { recursive: true })).map(String)) {
    const p = path.join(DIR, 'chunks', f);
    if (!(await fs.stat(p)).isFile()) continue;
    const b = await fs.readFile(p);
    b[20]! ^= 0x10;
    createHash('sha256').update(b.subarray(0, b.length - 32)).digest().copy(b, b.length - 32);
    await fs.writeFile(p, b);
  }

  const seen = logs.length;
  d = daemon();
  await eventually(async () => /schedule dtam: failed: .*did not verify/.test(logs.slice(seen)), 120000, 100);
  await stop(d);
  assert.match(logs.slice(seen), /schedule dtam: failed: checkpoint dtam-\S+ did not verify in \S+: chunk [0-9a-f]{12}… of checkpoint dtam-\S+ is corrupted: authentication failed.*nothing was pruned/);
  const afterIds = await ids();
  assert.ok(afterIds.includes(before[0]!), `the older checkpoint ${before[0]} was kept: ${afterIds.join(', ')}`);
  assert.equal(afterIds.length, 2, 'the new one is stored, nothing pruned');
});
