/**
 * Proof that the runtime makes containers CRIU can handle: a container started
 * by tsmigrate is dumped with a plain `criu dump` and restored with a plain
 * `criu restore` (as the child of a fresh tsm-shim), and the workload continues
 * where it stopped. No orchestration: that is the checkpoint issue's job.
 */
import { resolveTools } from '../../../src/runtime/tools.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { locateCriu } from '../../../src/criu/binary.js';
import { startShim } from '../../../src/shim/spawn.js';
import type { ContainerRuntimeState } from '../../../src/container/types.js';
import { cli, cliOk, eventually, tempRoot } from '../../helpers/cli.js';
import { busyboxRootfs, debianRootfs } from '../../helpers/images.js';
import { leftovers } from '../../helpers/leftovers.js';

const run = promisify(execFile);
const root = tempRoot();

before(async () => {
  await cliOk(root, ['image', 'import', 'busybox', busyboxRootfs()], { timeoutMs: 120000 });
  await cliOk(root, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 600000 });
});
after(async () => {
  for (const n of ['cbb', 'cpy']) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

function state(name: string): ContainerRuntimeState {
  return JSON.parse(readFileSync(path.join(root, 'containers', name, 'state.json'), 'utf8')) as ContainerRuntimeState;
}

async function dumpAndRestore(name: string): Promise<void> {
  const criu = await locateCriu(process.env);
  const s = state(name);
  const dir = mkdtempSync(path.join(tmpdir(), `tsm-img-${name}-`));
  await run(criu.path, ['dump', '-t', String(s.initPid), '-D', dir, '-o', 'dump.log', '-v4']).catch((e: Error) => {
    const log = readFileSync(path.join(dir, 'dump.log'), 'utf8');
    throw new Error(`criu dump failed: ${e.message}\n${log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
  });
  assert.ok(readdirSync(dir).some((f) => f.startsWith('pages-')), 'memory pages were dumped');
  // the dumped tree is gone; the old shim records the exit
  const cdir = path.join(root, 'containers', name);
  await eventually(async () => readdirSync(cdir).includes('exit.json'));
  rmSync(path.join(cdir, 'exit.json'));
  const pidfile = path.join(dir, 'restored.pid');
  const shim = await startShim(resolveTools(process.env).shim, 'restore', ['--pidfile', pidfile, '--', criu.path, 'restore', '-D', dir, '-o', 'restore.log', '-v4',
    '--root', s.rootfs.merged, '--restore-detached', '--restore-sibling', '--pidfile', pidfile,
    '--inherit-fd', `fd[3]:${s.stdio!.stdout}`, '--inherit-fd', `fd[4]:${s.stdio!.stderr}`], cdir).catch((e: Error) => {
    const log = readFileSync(path.join(dir, 'restore.log'), 'utf8');
    throw new Error(`${e.message}\n${log.split('\n').filter((l) => /Error/.test(l)).join('\n')}`);
  });
  // record the restored init so that the CLI manages it again
  const { procStartTime } = await import('../../../src/container/proc.js');
  const st = { ...s, initPid: shim.initPid, shimPid: shim.shimPid, initStartTime: await procStartTime(shim.initPid) };
  const { writeJsonAtomic } = await import('../../../src/state/atomic.js');
  await writeJsonAtomic(path.join(cdir, 'state.json'), st);
  rmSync(dir, { recursive: true, force: true });
}

test('a busybox container survives a plain criu dump and restore', async () => {
  await cliOk(root, ['run', '-d', 'cbb', '--image', 'busybox', '--memory', '64m', '--', 'sh', '-c',
    'i=0; while true; do i=$((i+1)); echo $i > /tmp/count.n; mv /tmp/count.n /tmp/count; echo tick $i; sleep 0.1; done']);
  const upper = path.join(root, 'containers/cbb/rootfs/upper/tmp/count');
  await eventually(async () => Number(readFileSync(upper, 'utf8')) >= 5);
  await dumpAndRestore('cbb');
  const at = Number(readFileSync(upper, 'utf8'));
  // it continues from where it was (the shell's i lives in the restored memory), not from 1
  await eventually(async () => Number(readFileSync(upper, 'utf8')) >= at + 5);
  const logs = await cliOk(root, ['logs', 'cbb']);
  assert.match(logs, new RegExp(`tick ${at + 3}\\n`), 'stdout reaches the new supervisor through --inherit-fd');
  const ps = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((r) => r.name === 'cbb')?.state, 'running');
  assert.equal((await cliOk(root, ['exec', 'cbb', '--', 'hostname'])).trim(), 'cbb');
  await cliOk(root, ['rm', '-f', 'cbb']);
  assert.deepEqual(leftovers(root, 'cbb'), []);
});

test('a Debian container running python3 survives a plain criu dump and restore', async () => {
  const prog = [
    'import hashlib, time',
    'blob = bytearray(hashlib.sha256(str(i).encode()).digest()[0] for i in range(8 << 20))',
    'digest = hashlib.sha256(blob).hexdigest()',
    'n = 0',
    'while True:',
    '    n += 1',
    '    open("/tmp/state", "w").write(f"{n} {hashlib.sha256(blob).hexdigest() == digest}")',
    '    time.sleep(0.1)',
  ].join('\n');
  await cliOk(root, ['run', '-d', 'cpy', '--image', 'debian', '--', 'python3', '-c', prog]);
  const upper = path.join(root, 'containers/cpy/rootfs/upper/tmp/state');
  const read = () => {
    const [n, ok] = readFileSync(upper, 'utf8').split(' ');
    return { n: Number(n), ok: ok === 'True' };
  };
  await eventually(async () => read().n >= 3, 60000);
  await dumpAndRestore('cpy');
  const at = read().n;
  await eventually(async () => read().n >= at + 3, 20000);
  assert.equal(read().ok, true, 'the memory blob is intact after restore');
  await cliOk(root, ['rm', '-f', 'cpy']);
  assert.deepEqual(leftovers(root, 'cpy'), []);
});
