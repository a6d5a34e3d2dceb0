/**
 * SSH against a real sshd: a local test host from scripts/local-hosts.sh on
 * 127.0.0.2 (loopback only), with its own rig directory so it never touches
 * the hosts a developer started by hand.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectSsh, type SshTarget } from '../../../src/ssh/connect.js';
import { fingerprint, KnownHosts } from '../../../src/ssh/known-hosts.js';
import { TsmError } from '../../../src/errors/errors.js';
import { CLI, REPO } from '../../helpers/cli.js';
import { freePort } from '../../helpers/rig.js';
import { spawnSync } from 'node:child_process';

const RIG = path.join(REPO, 'scripts/local-hosts.sh');
const ADDR = '127.0.0.2';
const NAME = 'ssh-it';
let work = '';
let env: NodeJS.ProcessEnv = {};
let port = 0;
let strictFile = '';
let target: SshTarget;

function rig(...args: string[]): string {
  return execFileSync('bash', [RIG, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}


async function rejectsWith(p: Promise<unknown>, code: string): Promise<TsmError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof TsmError, `expected a TsmError ${code}, got ${(e as Error)?.stack ?? String(e)}`);
    assert.equal(e.code, code, e.oneLine());
    assert.ok(!e.oneLine().includes('\n'), 'one line');
    assert.ok(e.fix, 'has a fix');
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SSH_AUTH_SOCK: '', ...extraEnv }, timeout: 60000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
/** stdout of a command that must succeed */
function cliOk(args: string[], extraEnv: NodeJS.ProcessEnv = {}): string {
  const r = cli(args, extraEnv);
  assert.equal(r.code, 0, `tsmigrate ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const opts = (files: string[], trustOnFirstUse = false) => ({ knownHostsFiles: files, trustOnFirstUse, agent: null, timeoutMs: 10000 });

before(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'tsm-ssh-it-'));
  env = { ...process.env, TSMIGRATE_HOSTS_DIR: path.join(work, 'rig'), TSMIGRATE_HOSTS_STATE: path.join(work, 'state') };
  port = await freePort(ADDR);
  const line = rig('start', NAME, ADDR, String(port)).trim();
  assert.match(line, new RegExp(`^\\[${ADDR.replaceAll('.', '\\.')}\\]:${port} ssh-ed25519 AAAA`));
  assert.equal(readFileSync(path.join(work, 'rig', NAME, 'known_hosts.line'), 'utf8').trim(), line);
  assert.equal(rig('start', NAME, ADDR, String(port)).trim(), line, 'start on a running host is a no-op');
  strictFile = path.join(work, 'known_hosts.strict');
  writeFileSync(strictFile, `${line}\n`);
  target = { name: NAME, user: 'root', address: ADDR, port, identity: path.join(work, 'rig', 'client_ed25519') };
});

after(() => {
  try {
    rig('stop', NAME, '--purge');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test('the rig reports its host running', () => {
  assert.match(rig('status', NAME), new RegExp(`^${NAME} ${ADDR}:${port} \\d+ running`));
});

test('strict known_hosts + identity: exec quotes every argument', async () => {
  const s = await connectSsh(target, opts([strictFile]));
  try {
    const hostPub = readFileSync(path.join(work, 'rig', NAME, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ')[1] ?? '';
    assert.equal(s.hostKeyFingerprint, fingerprint(Buffer.from(hostPub, 'base64')));
    const arg = `$(id) \`id\` 'single' "double" ; echo pwned $HOME \\ * ~`;
    const r = await s.run(['echo', arg]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${arg}\n`, 'the argument came back verbatim: nothing was expanded');
    const empty = await s.run(['printf', '[%s]', '', 'a\nb']);
    assert.equal(empty.stdout, '[][a\nb]');
    const fail = await s.run(['sh', '-c', 'echo to-stderr >&2; exit 3']);
    assert.deepEqual([fail.code, fail.signal, fail.stderr], [3, null, 'to-stderr\n']);
    const killed = await s.run(['sh', '-c', 'kill -TERM $$']);
    assert.deepEqual([killed.code, killed.signal], [null, 'SIGTERM']);
    const cat = await s.run(['cat'], { input: 'stdin reaches the host\n' });
    assert.equal(cat.stdout, 'stdin reaches the host\n');
    // streaming use: a channel is a Duplex with .stderr and .exit
    const ch = await s.exec(['sh', '-c', 'read x; echo "got $x"']);
    let out = '';
    ch.on('data', (d: Buffer) => (out += d.toString()));
    ch.end('line\n');
    assert.deepEqual(await ch.exit, { code: 0, signal: null });
    await new Promise((r) => (ch.readableEnded ? r(undefined) : ch.once('end', r)));
    assert.equal(out, 'got line\n');
    await s.ping();
    // the rig's hosts run this repository's tsmigrate, with their own state root
    const v = await s.run(['tsmigrate', '--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const root = await s.run(['sh', '-c', 'echo "$TSMIGRATE_ROOT"']);
    assert.equal(root.stdout.trim(), path.join(work, 'state', NAME));
  } finally {
    s.close();
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.closed, true);
});

test('close emits close without an error; exec after close is refused', async () => {
  const s = await connectSsh(target, opts([strictFile]));
  const closed = new Promise<unknown>((r) => s.once('close', r));
  s.close();
  assert.equal(await closed, undefined);
  await rejectsWith(s.exec(['true']), 'EHOST_UNREACHABLE');
});

test('unknown host key: EHOST_KEY_UNKNOWN and nothing written', async () => {
  const file = path.join(work, 'known_hosts.empty');
  const e = await rejectsWith(connectSsh(target, opts([file])), 'EHOST_KEY_UNKNOWN');
  assert.match(e.message, new RegExp(`${ADDR}:${port}`));
  assert.match(e.message, /SHA256:/);
  assert.equal(existsSync(file), false, 'no file was created');
  const other = path.join(work, 'known_hosts.other');
  const otherLine = `[${ADDR}]:${port + 1} ${readFileSync(path.join(work, 'rig', NAME, 'ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`;
  writeFileSync(other, otherLine);
  await rejectsWith(connectSsh(target, opts([other])), 'EHOST_KEY_UNKNOWN');
  assert.equal(readFileSync(other, 'utf8'), otherLine, 'nothing written');
});

test('trust on first use records the key hashed; the next connection is strict', async () => {
  const file = path.join(work, 'tofu', 'known_hosts');
  const s1 = await connectSsh(target, opts([file], true));
  s1.close();
  const text = readFileSync(file, 'utf8');
  assert.equal(text.split('\n').filter(Boolean).length, 1);
  assert.match(text, /^\|1\|[^ ]+ ssh-ed25519 AAAA/, 'hashed');
  assert.ok(!text.includes(ADDR), 'the address is not in clear');
  execFileSync('ssh-keygen', ['-F', `[${ADDR}]:${port}`, '-f', file], { stdio: 'ignore' }); // OpenSSH finds it
  const s2 = await connectSsh(target, opts([file], false));
  await s2.ping();
  s2.close();
  const s3 = await connectSsh(target, opts([file], true));
  s3.close();
  assert.equal(readFileSync(file, 'utf8'), text, 'a known key is not appended again');
});

test('a revoked host key is refused', async () => {
  const file = path.join(work, 'known_hosts.revoked');
  const line = readFileSync(strictFile, 'utf8').trim();
  writeFileSync(file, `@revoked * ${line.split(' ').slice(1).join(' ')}\n${line}\n`);
  await rejectsWith(connectSsh(target, opts([file], true)), 'EHOST_KEY_REVOKED');
});

test('a wrong identity: EHOST_AUTH', async () => {
  const key = path.join(work, 'stranger_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const e = await rejectsWith(connectSsh({ ...target, identity: key }, opts([strictFile])), 'EHOST_AUTH');
  assert.match(e.message, new RegExp(`root@${ADDR}:${port}`));
  await rejectsWith(connectSsh({ ...target, user: 'nobody-here' }, opts([strictFile])), 'EHOST_AUTH');
  await rejectsWith(connectSsh({ ...target, identity: null }, opts([strictFile])), 'EHOST_AUTH');
});

test('nothing listening: EHOST_UNREACHABLE', async () => {
  const e = await rejectsWith(connectSsh({ ...target, address: '127.0.0.9', port: 1 }, opts([strictFile])), 'EHOST_UNREACHABLE');
  assert.match(e.message, /127\.0\.0\.9:1/);
  assert.match(e.message, /connection refused/);
});

test('a peer that never speaks SSH: timeout; one that hangs up: EHOST_UNREACHABLE; abort works', async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((c) => sockets.add(c));
  const rude = net.createServer((c) => c.destroy());
  await new Promise<void>((r) => silent.listen(0, ADDR, r));
  await new Promise<void>((r) => rude.listen(0, ADDR, r));
  try {
    const sp = (silent.address() as net.AddressInfo).port;
    const rp = (rude.address() as net.AddressInfo).port;
    const t0 = Date.now();
    const e = await rejectsWith(connectSsh({ ...target, port: sp }, { ...opts([strictFile]), timeoutMs: 500 }), 'EHOST_UNREACHABLE');
    assert.match(e.message, /timed out after 500 ms/);
    assert.ok(Date.now() - t0 < 5000);
    await rejectsWith(connectSsh({ ...target, port: rp }, opts([strictFile])), 'EHOST_UNREACHABLE');
    const ac = new AbortController();
    const p = connectSsh({ ...target, port: sp }, { ...opts([strictFile]), signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(p, (err: Error) => err.name === 'AbortError');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
    await new Promise((r) => rude.close(r));
  }
});

test('host add / ls / ping / rm through the CLI', () => {
  const config = path.join(work, 'cli', 'config.yaml');
  const identity = path.join(work, 'rig', 'client_ed25519');
  const add = cli([
    '--config', config, 'host', 'add', 'b', `ssh://root@${ADDR}:${port}`,
    '--identity', identity, '--known-hosts', strictFile, '--command', `tsmigrate --root ${path.join(work, 'state', NAME)}`,
  ]);
  assert.equal(add.code, 0, add.stderr);
  assert.equal(add.stdout.trim(), `b ssh://root@${ADDR}:${port}`);
  const dup = cli(['--config', config, 'host', 'add', 'b', `ssh://root@${ADDR}:${port}`]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /^tsmigrate: error: host "b" is already in .*; remove it first/);
  const bad = cli(['--config', config, 'host', 'add', 'c', `ssh://root@${ADDR}:0`]);
  assert.equal(bad.code, 2);
  const ls = cli(['--config', config, 'host', 'ls', '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const rows = JSON.parse(ls.stdout) as Array<{ name: string; port: number; command: string[]; identity: string; knownHosts: string }>;
  assert.equal(rows.length, 1);
  assert.deepEqual(rows[0], {
    name: 'b', url: `ssh://root@${ADDR}:${port}`, user: 'root', address: ADDR, port, identity,
    command: ['tsmigrate', '--root', path.join(work, 'state', NAME)], knownHosts: strictFile, trustOnFirstUse: false,
  });
  assert.match(cliOk(['--config', config, 'host', 'ls']), /^NAME +URL +IDENTITY +COMMAND +KNOWN_HOSTS +TOFU\nb +ssh:\/\/root@/);
  const ping = cli(['--config', config, 'host', 'ping', 'b']);
  assert.equal(ping.code, 0, ping.stderr);
  assert.match(ping.stdout, /^b ok SHA256:\S+ \d+ms\n$/);
  // the same through TSMIGRATE_CONFIG
  assert.equal((JSON.parse(cliOk(['host', 'ls', '--json'], { TSMIGRATE_CONFIG: config })) as unknown[]).length, 1);
  const add2 = cli(['--config', config, 'host', 'add', 'unknown-key', `ssh://root@${ADDR}:${port}`, '--identity', identity, '--known-hosts', path.join(work, 'cli', 'empty_kh')]);
  assert.equal(add2.code, 0, add2.stderr);
  const ping2 = cli(['--config', config, 'host', 'ping', 'unknown-key']);
  assert.equal(ping2.code, 1);
  assert.match(ping2.stderr, new RegExp(`^tsmigrate: error: host key for ${ADDR}:${port} \\(unknown-key\\) is not known: ssh-ed25519 SHA256:`));
  assert.equal(cliOk(['--config', config, 'host', 'rm', 'b']).trim(), 'b');
  assert.equal(cliOk(['--config', config, 'host', 'rm', 'unknown-key']).trim(), 'unknown-key');
  const rm = cli(['--config', config, 'host', 'rm', 'b']);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /no host "b"/);
  assert.equal((JSON.parse(cliOk(['--config', config, 'host', 'ls', '--json'])) as unknown[]).length, 0);
});

// last: it gives the rig host a new key
test('a changed host key: EHOST_KEY_MISMATCH with both fingerprints, even with trust on first use', async () => {
  const oldFp = (await KnownHosts.load([strictFile])).entries[0]?.key;
  assert.ok(oldFp);
  const newLine = rig('rekey', NAME).trim();
  const newKey = Buffer.from(newLine.split(' ')[2] ?? '', 'base64');
  const before = readFileSync(strictFile, 'utf8');
  for (const tofu of [false, true]) {
    const e = await rejectsWith(connectSsh(target, opts([strictFile], tofu)), 'EHOST_KEY_MISMATCH');
    assert.equal(e.message, `host key for ${ADDR}:${port} changed: expected ${fingerprint(oldFp)}, presented ${fingerprint(newKey)}`);
    assert.match(e.fix ?? '', new RegExp(`ssh-keygen -R '\\[${ADDR.replaceAll('.', '\\.')}\\]:${port}' -f ${strictFile.replaceAll('.', '\\.')}`));
  }
  assert.equal(readFileSync(strictFile, 'utf8'), before, 'known_hosts untouched');
  // the suggested fix works
  execFileSync('ssh-keygen', ['-R', `[${ADDR}]:${port}`, '-f', strictFile], { stdio: 'ignore' });
  writeFileSync(strictFile, `${newLine}\n`, { flag: 'a' });
  const s = await connectSsh(target, opts([strictFile]));
  await s.ping();
  s.close();
});
