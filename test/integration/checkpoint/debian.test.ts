import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { debianRootfs } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';

const root = tempRoot();
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 300000 });

before(async () => {
  await T(['image', 'import', 'debian', debianRootfs()]);
});
after(async () => {
  for (const n of ['mem', 'q', 'redis']) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

/** A python3 program that holds state in memory and reports it when /tmp/trigger appears. */
function py(lines: string[]): string[] {
  return ['python3', '-u', '-c', lines.join('\n')];
}
const upper = (name: string, f: string) => path.join(root, 'containers', name, 'rootfs/upper', f);
async function trigger(name: string, out: string): Promise<string> {
  await T(['exec', name, '--', 'sh', '-c', `rm -f ${out}; touch /tmp/trigger`]);
  return eventually(async () => {
    try {
      const s = readFileSync(upper(name, out), 'utf8');
      return s.endsWith('\n') ? s.trim() : undefined;
    } catch {
      return undefined;
    }
  }, 60000);
}

test('python3 holding 256 MiB of patterned memory: its hash is equal after restore', async () => {
  await T(['run', '-d', 'mem', '--image', 'debian', '--memory', '1g', '--', ...py([
    'import hashlib, os, time',
    'buf = bytearray(os.urandom(1 << 20)) * 128 + bytearray(b"tsmigrate" * ((128 << 20) // 9 + 1))[: 128 << 20]',
    'open("/tmp/ready", "w").write(hashlib.sha256(buf).hexdigest() + "\\n")',
    'while True:',
    '    if os.path.exists("/tmp/trigger"):',
    '        os.unlink("/tmp/trigger")',
    '        open("/tmp/hash", "w").write(hashlib.sha256(buf).hexdigest() + " " + str(len(buf)) + "\\n")',
    '    time.sleep(0.05)',
  ])]);
  const h0 = await eventually(async () => {
    try {
      const s = readFileSync(upper('mem', 'tmp/ready'), 'utf8');
      return s.endsWith('\n') ? s.trim() : undefined;
    } catch {
      return undefined;
    }
  }, 120000);
  const m = JSON.parse(await T(['--json', 'checkpoint', 'mem', '--stop'])) as { id: string; blobs: { criu: { size: number } } };
  assert.ok(m.blobs.criu.size > 128 << 20, 'the random half of the memory is in the images');
  await T(['restore', m.id]);
  assert.equal(await trigger('mem', 'tmp/hash'), `${h0} ${256 << 20}`);
  await T(['rm', '-f', 'mem']);
  assert.deepEqual(leftovers(root, 'mem'), []);
});

test('a pipe and a unix socketpair with data queued in them survive', async () => {
  await T(['run', '-d', 'q', '--image', 'debian', '--', ...py([
    'import os, socket, time',
    'r, w = os.pipe()',
    'os.write(w, b"queued-in-pipe")',
    'a, b = socket.socketpair()',
    'a.sendall(b"queued-in-socketpair")',
    'open("/tmp/ready", "w").write("ok\\n")',
    'while True:',
    '    if os.path.exists("/tmp/trigger"):',
    '        os.unlink("/tmp/trigger")',
    '        open("/tmp/out", "w").write(os.read(r, 100).decode() + " " + b.recv(100).decode() + "\\n")',
    '    time.sleep(0.05)',
  ])]);
  await eventually(async () => readFileSync(upper('q', 'tmp/ready'), 'utf8') === 'ok\n', 60000);
  const m = JSON.parse(await T(['--json', 'checkpoint', 'q', '--stop'])) as { id: string };
  await T(['restore', m.id]);
  assert.equal(await trigger('q', 'tmp/out'), 'queued-in-pipe queued-in-socketpair');
});

test('redis-server with 10,000 keys: DBSIZE and sample values are equal after restore; export and import carry it', async () => {
  await T(['run', '-d', 'redis', '--image', 'debian', '--memory', '512m', '--', 'redis-server', '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1', '--port', '6379']);
  await eventually(async () => (await cli(root, ['exec', 'redis', '--', 'redis-cli', 'PING'])).stdout.trim() === 'PONG', 60000);
  await T(['exec', 'redis', '--', 'sh', '-c', 'for i in $(seq 1 10000); do echo "SET key:$i value-$i"; done | redis-cli > /dev/null']);
  assert.equal((await T(['exec', 'redis', '--', 'redis-cli', 'DBSIZE'])).trim(), '10000');
  const m = JSON.parse(await T(['--json', 'checkpoint', 'redis', '--stop'])) as { id: string };
  // export to one file, drop the checkpoint, import it again (as another host would)
  const file = path.join(tmpdir(), `tsm-export-${process.pid}.tar.zst`);
  rmSync(file, { force: true });
  await T(['checkpoint', 'export', m.id, file]);
  await T(['checkpoint', 'rm', m.id]);
  assert.deepEqual(JSON.parse(await T(['--json', 'checkpoints'])).filter((c: { id: string }) => c.id === m.id), []);
  assert.equal((await T(['checkpoint', 'import', file])).trim(), m.id);
  rmSync(file, { force: true });
  await T(['restore', m.id]);
  await eventually(async () => (await cli(root, ['exec', 'redis', '--', 'redis-cli', 'PING'])).stdout.trim() === 'PONG', 30000);
  assert.equal((await T(['exec', 'redis', '--', 'redis-cli', 'DBSIZE'])).trim(), '10000');
  for (const k of [1, 777, 5000, 10000]) assert.equal((await T(['exec', 'redis', '--', 'redis-cli', 'GET', `key:${k}`])).trim(), `value-${k}`);
});
