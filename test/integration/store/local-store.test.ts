/**
 * Checkpoints into a deduplicating store with real CRIU: the dedup goal (a
 * second checkpoint of an idle 256 MiB container adds < 10% of the first),
 * encryption at rest, restore --latest with a corrupted newest checkpoint, and
 * the refusal to make a second copy.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { debianRootfs } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';

const root = tempRoot();
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 300000 });
const upper = (name: string, f: string) => path.join(root, 'containers', name, 'rootfs/upper', f);

before(async () => {
  await T(['image', 'import', 'debian', debianRootfs()]);
});
after(async () => {
  await cli(root, ['rm', '-f', 'idle']);
  rmSync(root, { recursive: true, force: true });
});

interface Added { id: string; logicalBytes: number; addedBytes: number; frozenMs: number }

test('an idle 256 MiB container: the second checkpoint adds < 10% of the first; encrypted store hides memory; restore --latest skips a corrupted one', async () => {
  // half random, half text-like (never all zeros), plus a counter it keeps in a file
  await T(['run', '-d', 'idle', '--image', 'debian', '--memory', '1g', '--', 'python3', '-u', '-c', [
    'import os, time',
    'buf = bytearray(os.urandom(128 << 20)) + bytearray(b"tsmigrate-secret-marker " * ((128 << 20) // 24 + 1))[: 128 << 20]',
    'i = 0',
    'open("/tmp/ready", "w").write("1\\n")',
    'while True:',
    '    i += 1',
    '    open("/tmp/count", "w").write(str(i) + "\\n")',
    '    time.sleep(0.2)',
  ].join('\n')]);
  await eventually(async () => readFileSync(upper('idle', 'tmp/ready'), 'utf8') === '1\n', 120000, 200);
  const first = JSON.parse(await T(['--json', 'checkpoint', 'idle', '--store', 'local'])) as Added;
  const second = JSON.parse(await T(['--json', 'checkpoint', 'idle', '--store', 'local'])) as Added;
  assert.ok(first.logicalBytes > 256 << 20, `the checkpoint holds the memory (${first.logicalBytes})`);
  assert.ok(first.addedBytes > 128 << 20, 'the random half is stored');
  assert.ok(second.addedBytes < first.addedBytes * 0.1, `second added ${second.addedBytes} bytes, first ${first.addedBytes}`);
  const stats = JSON.parse(await T(['--json', 'store', 'stats'])) as { checkpoints: number; logicalBytes: number; physicalBytes: number };
  assert.equal(stats.checkpoints, 2);
  assert.ok(stats.physicalBytes < stats.logicalBytes / 2, `physical ${stats.physicalBytes} vs logical ${stats.logicalBytes}`);
  assert.match(await T(['store', 'verify']), /ok/);

  // encrypted: the store on disk never holds the plaintext marker
  const keyFile = path.join(root, 'store.key');
  await T(['store', 'keygen', keyFile]);
  assert.equal((await fs.stat(keyFile)).mode & 0o077, 0);
  const encDir = path.join(root, 'enc-store');
  const enc = JSON.parse(await T(['--json', 'checkpoint', 'idle', '--store', encDir, '--encrypt-key', keyFile])) as Added;
  assert.ok(enc.addedBytes > 128 << 20);
  const marker = Buffer.from('tsmigrate-secret-marker tsmigrate-secret-marker');
  for (const f of await fs.readdir(encDir, { recursive: true })) {
    const p = path.join(encDir, String(f));
    const st = await fs.stat(p);
    if (st.isFile()) {
      assert.equal((await fs.readFile(p)).includes(marker), false, `${f} holds plaintext`);
      assert.equal(st.mode & 0o077, 0, `${f} is root-only`);
    }
  }
  const noKey = await cli(root, ['store', 'ls', '--store', encDir]);
  assert.notEqual(noKey.code, 0);
  assert.match(noKey.stderr, /is encrypted; give its key with --encrypt-key FILE/);
  assert.equal(noKey.stderr.trim().split('\n').length, 1);

  // never two copies: the container still runs here
  const twice = await cli(root, ['restore', 'idle', '--latest']);
  assert.notEqual(twice.code, 0);
  assert.match(twice.stderr, /"idle" is running on this host: restoring it would make a second copy/);

  // corrupt one chunk only the newest local checkpoint has, kill the container, restore --latest
  const ls = JSON.parse(await T(['--json', 'store', 'ls', 'idle'])) as { checkpoints: Array<{ id: string }> };
  assert.deepEqual(ls.checkpoints.map((c) => c.id), [first.id, second.id]);
  const refs = (id: string) => readFileSync(path.join(root, 'store/snapshots', `${id}.refs`));
  const older = new Set<string>();
  const r1 = refs(first.id);
  for (let i = 0; i < r1.length; i += 32) older.add(r1.subarray(i, i + 32).toString('hex'));
  const r2 = refs(second.id);
  let victim = '';
  for (let i = 0; i < r2.length && !victim; i += 32) {
    const h = r2.subarray(i, i + 32).toString('hex');
    if (!older.has(h)) victim = h;
  }
  assert.ok(victim, 'the second checkpoint has a chunk of its own');
  const vf = path.join(root, 'store/chunks', victim.slice(0, 2), victim);
  const obj = readFileSync(vf);
  obj[obj.length >> 1]! ^= 0x5a;
  await fs.writeFile(vf, obj);
  const bad = await cli(root, ['store', 'verify']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, new RegExp(`chunk ${victim.slice(0, 12)}… of checkpoint ${second.id} in local is corrupted: checksum mismatch`));
  const explicit = await cli(root, ['restore', 'idle', second.id]);
  assert.notEqual(explicit.code, 0);
  assert.match(explicit.stderr, /is corrupted/);
  const before = Number(readFileSync(upper('idle', 'tmp/count'), 'utf8'));
  await T(['rm', '-f', 'idle']);
  assert.deepEqual(leftovers(root, 'idle'), []);
  const r = await cli(root, ['--json', 'restore', 'idle', '--latest'], { timeoutMs: 300000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`warning: checkpoint ${second.id} is corrupted`));
  assert.equal((JSON.parse(r.stdout) as { id: string }).id, first.id);
  const c0 = Number((await T(['exec', 'idle', '--', 'cat', '/tmp/count'])).trim());
  assert.ok(c0 <= before && c0 > 0, `restored the first checkpoint's state (${c0} <= ${before})`);
  await eventually(async () => Number((await T(['exec', 'idle', '--', 'cat', '/tmp/count'])).trim()) > c0 + 2, 20000, 200);
});
