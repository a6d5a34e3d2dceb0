import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { debianRootfs, importBusybox } from '../../helpers/images.js';
import { SHELL_SESSION, SHELL_SIZE, atTerminal, tsmAt, type Session } from '../../helpers/terminal.js';

const root = tempRoot();
const LEGACY_TIOCSTI = '/proc/sys/dev/tty/legacy_tiocsti';
let savedLegacy: string | undefined;

const tsm = tsmAt(root);

// Pushes "echo PWNED\n" with TIOCSTI through every descriptor it has and through /dev/tty; reports each outcome.
const INJECT = `
import errno, fcntl, json, os, termios
res = {}
for fd in sorted(int(f) for f in os.listdir('/proc/self/fd')) + ['/dev/tty']:
    try:
        f = os.open('/dev/tty', os.O_RDWR) if fd == '/dev/tty' else fd
        for c in b'echo PWNED\\n':
            fcntl.ioctl(f, termios.TIOCSTI, bytes([c]))
        res[str(fd)] = 'injected'
    except OSError as e:
        res[str(fd)] = errno.errorcode[e.errno]
print('RESULT ' + json.dumps(res))
`;
const injected = (s: Session) => JSON.parse(/RESULT (\{.*\})/.exec(s.transcript)?.[1] ?? 'null') as Record<string, string> | null;

before(async () => {
  await importBusybox(root);
  await cliOk(root, ['image', 'import', 'debian', debianRootfs()], { timeoutMs: 600000 });
  await cliOk(root, ['run', '-d', 'ttybb', '--image', 'busybox', '--', 'sleep', '100000']);
  await cliOk(root, ['run', '-d', 'ttydeb', '--image', 'debian', '--', 'sleep', '100000']);
  // Linux 6.2+ can refuse TIOCSTI to the unprivileged; the test needs the kernel to allow it, so that only tsmigrate stops it
  if (existsSync(LEGACY_TIOCSTI)) {
    savedLegacy = readFileSync(LEGACY_TIOCSTI, 'utf8');
    writeFileSync(LEGACY_TIOCSTI, '1');
  }
});
after(async () => {
  if (savedLegacy !== undefined) writeFileSync(LEGACY_TIOCSTI, savedLegacy);
  for (const n of ['ttybb', 'ttydeb']) await cli(root, ['rm', '-f', n]);
  rmSync(root, { recursive: true, force: true });
});

test('exec -it: an interactive shell on a pty of its own, Ctrl-C reaches its foreground job, window size follows the caller', async () => {
  const s = await atTerminal(SHELL_SESSION, tsm('exec', '-it', 'ttybb', '--', 'sh'), SHELL_SIZE);
  assert.ok(s.ok, `step ${JSON.stringify(s.failed)} failed; the terminal showed:\n${s.transcript}`);
  assert.equal(s.exit, 7, 'the shell exit code is passed on');
  assert.ok(s.termiosRestored, 'the caller terminal leaves raw mode');
  assert.equal(s.pending, '');
});

test('exec -t: ttyname is a pty of the container devpts, its session leader, TERM set', async () => {
  const s = await atTerminal([], tsm('exec', '-t', 'ttybb', '--', 'sh', '-c', 'tty; echo "term=$TERM"; ps -o pid,sid,comm | grep -w "$$"'));
  assert.match(s.transcript, /^\/dev\/pts\/\d+\r\nterm=xterm\r\n/);
  const [pid, sid] = /^\s*(\d+)\s+(\d+)\s+sh/m.exec(s.transcript)?.slice(1) ?? [];
  assert.ok(pid !== undefined && pid === sid, `the exec'd shell leads its own session: ${s.transcript}`);
  assert.equal(s.exit, 0);
});

test('without -i, Ctrl-C at the caller terminal is a signal the shim passes on (with -t and without)', async () => {
  for (const flags of [[], ['-t']]) {
    const s = await atTerminal(
      [{ expect: 'ready' }, { sleep: 0.3 }, { send: '\x03' }],
      tsm('exec', ...flags, 'ttybb', '--', 'sh', '-c', 'echo ready; sleep 100; echo not-interrupted'),
    );
    assert.ok(s.ok, s.transcript);
    assert.equal(s.exit, 130, `exec ${flags.join(' ')}: the shell died of SIGINT: ${s.transcript}`);
    assert.ok(!s.transcript.includes('not-interrupted'));
    assert.ok(s.termiosRestored);
  }
});

test('TIOCSTI from inside exec never reaches the caller terminal (with -t only its own pty)', async () => {
  // the control: the same program run straight on the caller terminal does inject, so the kernel allows it here
  const control = await atTerminal([], ['python3', '-c', INJECT]);
  assert.match(control.pending, /echo PWNED/);

  for (const flags of [[], ['-i'], ['-t'], ['-it']]) {
    // --leak-fd: the terminal also sits on descriptor 5 of the CLI, without close-on-exec
    const s = await atTerminal([], tsm('exec', ...flags, 'ttydeb', '--', 'python3', '-c', INJECT), ['--leak-fd', '5']);
    const what = `exec ${flags.join(' ')}`;
    const r = injected(s);
    assert.ok(r, `${what}: no result in ${s.transcript}`);
    assert.equal(s.pending, '', `${what}: input was injected into the caller terminal`);
    assert.equal(s.exit, 0);
    if (flags.some((f) => f.includes('t'))) {
      for (const k of ['0', '1', '2', '/dev/tty']) assert.equal(r[k], 'injected', `${what}: ${k} is the container's own pty`);
    } else {
      for (const k of ['0', '1', '2']) assert.equal(r[k], 'ENOTTY', `${what}: fd ${k} is no terminal`);
      assert.equal(r['/dev/tty'], 'ENXIO', `${what}: no controlling terminal`);
    }
    assert.deepEqual(Object.keys(r).sort(), ['/dev/tty', '0', '1', '2', '3'], `${what}: nothing but 0-2 (3 is the listing)`);
  }
});

test('exec without -t: not a tty, and fds 0-2 are /dev/null or pipes, never the caller terminal', async () => {
  const show = ['sh', '-c', 'tty; for n in 0 1 2; do echo "fd$n=$(readlink /proc/self/fd/$n)"; done'];
  const plain = await atTerminal([], tsm('exec', 'ttybb', '--', ...show));
  assert.match(plain.transcript, /^not a tty\r\n/);
  assert.match(plain.transcript, /fd0=\/dev\/null\r\nfd1=pipe:\[\d+\]\r\nfd2=pipe:\[\d+\]\r\n/);
  assert.ok(!plain.transcript.includes(plain.tty), `the caller terminal ${plain.tty} shows up inside`);
  const inter = await atTerminal([{ send: 'x\n' }], tsm('exec', '-i', 'ttybb', '--', ...show));
  assert.match(inter.transcript, /fd0=pipe:\[\d+\]\r\nfd1=pipe:\[\d+\]\r\nfd2=pipe:\[\d+\]\r\n/);
  assert.ok(!inter.transcript.includes(inter.tty));
});

test('exec -i relays stdin to its end; without -i stdin is empty; -it without a terminal is refused', async () => {
  const run = (args: string[], input: string) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, '--root', root, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      c.stdin.end(input);
      c.once('close', (code) => resolve({ code, out, err }));
    });
  const count = ['sh', '-c', 'wc -l; echo done'];
  assert.equal((await run(['exec', '-i', 'ttybb', '--', ...count], 'a\nb\nc\n')).out.replace(/ +/g, ''), '3\ndone\n');
  assert.equal((await run(['exec', 'ttybb', '--', ...count], 'a\nb\nc\n')).out.replace(/ +/g, ''), '0\ndone\n');
  const refused = await run(['exec', '-it', 'ttybb', '--', 'true'], '');
  assert.equal(refused.code, 2);
  assert.equal(refused.err, 'tsmigrate: error: -i -t needs a terminal on stdin, and stdin is not one; run it from a terminal, or drop -t to relay stdin through a pipe\n');
});
