import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { importBusybox } from '../../helpers/images.js';
import { SHELL_SESSION, SHELL_SIZE, atTerminal, tsmAt } from '../../helpers/terminal.js';

const root = tempRoot();
const tsm = tsmAt(root);
const names = ['rit', 'rt', 'rdit', 'ri', 'rnot'];

before(async () => {
  await importBusybox(root);
});
after(async () => {
  for (const n of names) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

test('run -it: the init is a shell on a pty of its own, sized like the caller, Ctrl-C reaches its job, the log keeps the session', async () => {
  const s = await atTerminal(SHELL_SESSION, tsm('run', '-it', 'rit', '--image', 'busybox', '--', 'sh'), SHELL_SIZE);
  assert.ok(s.ok, `step ${JSON.stringify(s.failed)} failed; the terminal showed:\n${s.transcript}`);
  assert.equal(s.exit, 7, "the init's exit code is the CLI's");
  assert.ok(s.termiosRestored);
  assert.equal(s.pending, '');
  const log = readFileSync(path.join(root, 'containers/rit/container.log'), 'utf8');
  assert.match(log, /alive-42\r\n/, 'the supervisor logs the terminal');
  assert.ok(!existsSync(path.join(root, 'containers/rit/attach.sock')), 'the attach socket goes with the supervisor');
});

test('run -t without a terminal: the output still comes (from the log when the command was quicker than the attach)', async () => {
  const r = await cli(root, ['run', '-t', 'rt', '--image', 'busybox', '--', 'sh', '-c', 'tty; echo "term=$TERM"; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, '/dev/pts/0\r\nterm=xterm\r\n');
});

test('run -dit keeps a shell waiting on its terminal', async () => {
  await cliOk(root, ['run', '-dit', 'rdit', '--image', 'busybox', '--', 'sh']);
  await new Promise((r) => setTimeout(r, 500));
  const ps = JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>;
  assert.equal(ps.find((p) => p.name === 'rdit')?.state, 'running');
  assert.equal((await cliOk(root, ['exec', 'rdit', '--', 'readlink', '/proc/1/fd/0'])).trim(), '/dev/pts/0');
  await cliOk(root, ['stop', '-t', '1', 'rdit']);
});

test('run refuses -i without -t, and -it without a terminal, with one line and nothing made', async () => {
  const i = await cli(root, ['run', '-i', 'ri', '--image', 'busybox', '--', 'sh']);
  assert.equal(i.code, 2);
  assert.equal(i.stderr, 'tsmigrate: error: run -i without -t is not supported yet; add -t (the container gets a terminal), or pipe input in with tsmigrate exec -i\n');
  const it = await cli(root, ['run', '-it', 'rnot', '--image', 'busybox', '--', 'sh']);
  assert.equal(it.code, 2);
  assert.match(it.stderr, /^tsmigrate: error: -i -t needs a terminal on stdin, and stdin is not one; [^\n]*\n$/);
  for (const n of ['ri', 'rnot']) assert.ok(!existsSync(path.join(root, 'containers', n)), `${n} was not created`);
});
