import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { debianRootfs, importBusybox } from '../../helpers/images.js';
import { atTerminal, tsmAt } from '../../helpers/terminal.js';

const root = tempRoot();
const tsm = tsmAt(root);
const T = (args: string[]) => cliOk(root, args, { timeoutMs: 120000 });
const DETACH = '\x10\x11';

before(async () => {
  await importBusybox(root);
  await cliOk(root, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 600000 });
});
after(async () => {
  for (const n of ['tsh', 'tbb']) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

const stdioOf = (name: string) =>
  (JSON.parse(readFileSync(path.join(root, 'containers', name, 'state.json'), 'utf8')) as { stdio: { stdout: string; stderr: string } }).stdio;

test('a bash run -it survives checkpoint --stop and restore on its terminal: same process, same variables, attach works again', async () => {
  // an interactive shell with some state only its memory holds; Ctrl-P Ctrl-Q leaves it running
  const first = await atTerminal(
    [{ expect: '# ' }, { send: 'X=41; echo pid-$$\r' }, { expect: 'pid-\\d+\\r\\n' }, { send: DETACH }],
    tsm('run', '-it', 'tsh', '--image', 'debian', '--', 'bash'),
  );
  assert.ok(first.ok, first.transcript);
  assert.equal(first.exit, 0, 'detached, not ended');
  const pid = /pid-(\d+)/.exec(first.transcript)?.[1];
  assert.match(stdioOf('tsh').stdout, /^tty\[[0-9a-f]+:[0-9a-f]+\]$/, 'the init writes to a pty');

  const id = (JSON.parse(await T(['--json', 'checkpoint', 'tsh', '--stop'])) as { id: string }).id;
  assert.match(await T(['--json', 'ps']), /"state": "exited"/);
  await T(['rm', 'tsh']);
  await T(['restore', id]);
  assert.match(stdioOf('tsh').stdout, /^tty\[[0-9a-f]+:[0-9a-f]+\]$/, 'the restored init writes to the pty of its new supervisor');
  // still the controlling terminal of the restored shell: job control and Ctrl-C work on it
  const again = await atTerminal(
    [
      { send: '\r' },
      { expect: '# ' },
      { send: 'echo pid-$$ x-$((X+1))\r' },
      { expect: 'x-42\\r\\n' },
      { send: 'sleep 100\r' },
      { sleep: 0.5 },
      { send: '\x03' },
      { send: 'echo back-$((X+2)); exit 3\r' },
      { expect: 'back-43', timeout: 5 },
    ],
    tsm('attach', 'tsh'),
  );
  assert.ok(again.ok, `step ${JSON.stringify(again.failed)} failed; the terminal showed:\n${again.transcript}`);
  assert.match(again.transcript, new RegExp(`pid-${pid} x-42`), 'the same shell, with its variable');
  assert.equal(again.exit, 3, 'attach returns the exit code when the init ends');
});

test('a shell that holds /dev/tty open (busybox sh) is not checkpointed: one plain line, and it runs on', async () => {
  await T(['run', '-dit', 'tbb', '--image', 'busybox', '--', 'sh']);
  await new Promise((r) => setTimeout(r, 500));
  const r = await cli(root, ['checkpoint', 'tbb']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^tsmigrate: error: criu dump failed: a process holds \/dev\/tty open .*; run the shell as bash, or run the container without -t/);
  assert.match(await T(['--json', 'ps']), /"name": "tbb",\s+"state": "running"/);
});
