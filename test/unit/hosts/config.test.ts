import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  addHost,
  checkIdentityFile,
  DEFAULT_KNOWN_HOSTS,
  getHost,
  knownHostsFilesFor,
  loadHostsConfig,
  parseHostsConfig,
  parseHostUrl,
  removeHost,
  resolveConfigPath,
  splitCommand,
} from '../../../src/hosts/config.js';
import { TsmError } from '../../../src/errors/errors.js';

let dir = '';
let key = '';
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tsm-hosts-'));
  key = path.join(dir, 'id_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The error's code, checking it is one line with a fix. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TsmError, `expected a TsmError, got ${String(e)}`);
    assert.ok(!e.oneLine().includes('\n'), `one line: ${e.oneLine()}`);
    assert.ok(e.fix, 'says how to fix it');
    return e.code;
  }
  return 'no error';
}
async function codeOfAsync(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof TsmError, `expected a TsmError, got ${String(e)}`);
    assert.ok(!e.oneLine().includes('\n'), `one line: ${e.oneLine()}`);
    assert.ok(e.fix, 'says how to fix it');
    return e.code;
  }
  return 'no error';
}
function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return '';
}

test('config path: --config, then TSMIGRATE_CONFIG, then /etc/tsmigrate/config.yaml', () => {
  assert.equal(resolveConfigPath('/x/c.yaml', { TSMIGRATE_CONFIG: '/y' }), '/x/c.yaml');
  assert.equal(resolveConfigPath(undefined, { TSMIGRATE_CONFIG: '/y/c.yaml' }), '/y/c.yaml');
  assert.equal(resolveConfigPath(undefined, {}), '/etc/tsmigrate/config.yaml');
});

test('urls', () => {
  assert.deepEqual(parseHostUrl('ssh://root@127.0.0.2:2222'), { user: 'root', address: '127.0.0.2', port: 2222, url: 'ssh://root@127.0.0.2:2222' });
  assert.deepEqual(parseHostUrl('ssh://root@127.0.0.2'), { user: 'root', address: '127.0.0.2', port: 22, url: 'ssh://root@127.0.0.2' });
  assert.deepEqual(parseHostUrl('ssh://root@127.0.0.2:22/'), { user: 'root', address: '127.0.0.2', port: 22, url: 'ssh://root@127.0.0.2' });
  assert.deepEqual(parseHostUrl('ssh://u@[::1]:2222'), { user: 'u', address: '::1', port: 2222, url: 'ssh://u@[::1]:2222' });
  assert.deepEqual(parseHostUrl('ssh://u@Node-B.local'), { user: 'u', address: 'node-b.local', port: 22, url: 'ssh://u@node-b.local' });
  for (const bad of [
    '127.0.0.2',
    'ssh://127.0.0.2',
    'http://root@127.0.0.2',
    'ssh://root@127.0.0.2:0',
    'ssh://root@127.0.0.2:65536',
    'ssh://root@127.0.0.2:99999999',
    'ssh://root@127.0.0.256',
    'ssh://root@127.0.0.2:22/path',
    'ssh://root:pw@127.0.0.2',
    'ssh://ro ot@127.0.0.2',
    'ssh://root@[127.0.0.2]',
    'ssh://root@-bad-',
    'ssh://root@127.0.0.2:port',
    'ssh://root@127.0.0.2?x=1',
  ]) {
    assert.equal(codeOf(() => parseHostUrl(bad)), 'EINVAL_ARG', bad);
  }
});

test('splitCommand splits on whitespace', () => {
  assert.deepEqual(splitCommand(' tsmigrate  --root\t/var/lib/tsm-b '), ['tsmigrate', '--root', '/var/lib/tsm-b']);
  assert.equal(codeOf(() => splitCommand('   ')), 'EINVAL_ARG');
});

test('a full config parses, with defaults and paths relative to the file', () => {
  const cfg = parseHostsConfig(
    [
      '# peers',
      'knownHosts: kh/known_hosts',
      'hosts:',
      '  b:',
      '    url: ssh://root@127.0.0.2:2222',
      '    identity: keys/id',
      '    command: [tsmigrate, --root, /var/lib/tsm-b]',
      '    knownHosts: /etc/tsmigrate/known_hosts.b',
      '    trustOnFirstUse: true',
      '  a:',
      '    url: ssh://admin@127.0.0.3',
    ].join('\n'),
    '/cfg/dir/config.yaml',
  );
  assert.equal(cfg.file, '/cfg/dir/config.yaml');
  assert.equal(cfg.knownHosts, '/cfg/dir/kh/known_hosts');
  assert.deepEqual(
    cfg.hosts.map((h) => h.name),
    ['a', 'b'],
    'sorted by name',
  );
  const b = getHost(cfg, 'b');
  assert.deepEqual(b, {
    name: 'b',
    url: 'ssh://root@127.0.0.2:2222',
    user: 'root',
    address: '127.0.0.2',
    port: 2222,
    identity: '/cfg/dir/keys/id',
    command: ['tsmigrate', '--root', '/var/lib/tsm-b'],
    knownHosts: '/etc/tsmigrate/known_hosts.b',
    trustOnFirstUse: true,
  });
  const a = getHost(cfg, 'a');
  assert.deepEqual(a.command, ['tsmigrate']);
  assert.equal(a.identity, null);
  assert.equal(a.trustOnFirstUse, false);
  assert.deepEqual(knownHostsFilesFor(cfg, a), ['/cfg/dir/kh/known_hosts']);
  assert.deepEqual(knownHostsFilesFor(cfg, b), ['/etc/tsmigrate/known_hosts.b']);
  assert.equal(codeOf(() => getHost(cfg, 'zz')), 'ENOENT_HOST');
});

test('empty configs', () => {
  for (const text of ['', '# nothing\n', 'hosts:\n', 'hosts: {}\n', '---\n']) {
    const cfg = parseHostsConfig(text, '/c.yaml');
    assert.deepEqual(cfg.hosts, [], JSON.stringify(text));
    assert.equal(cfg.knownHosts, DEFAULT_KNOWN_HOSTS);
  }
});

test('bad configs: ECONFIG naming file:line', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2\n    colour: red\n', 'unknown host key', /^\/c\.yaml:4: unknown key "colour" in host "b"/],
    ['hosts: {}\nextra: 1\n', 'unknown top key', /^\/c\.yaml:2: unknown key "extra"/],
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2:70000\n', 'port', /^\/c\.yaml:3: invalid port 70000/],
    ['hosts:\n  b:\n    url: 127.0.0.2\n', 'url form', /^\/c\.yaml:3: invalid url/],
    ['hosts:\n  B!:\n    url: ssh://root@127.0.0.2\n', 'name', /^\/c\.yaml:2: invalid host name "B!"/],
    ['hosts:\n  b:\n    identity: /x\n', 'no url', /^\/c\.yaml:2: host "b" has no url/],
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2\n    command: tsmigrate --root /x\n', 'command string', /^\/c\.yaml:4: command must be a non-empty list/],
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2\n    command: []\n', 'empty command', /^\/c\.yaml:4: command must be/],
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2\n    trustOnFirstUse: yes\n', 'tofu not bool', /^\/c\.yaml:4: trustOnFirstUse of host "b" must be true or false/],
    ['hosts:\n  b:\n    url: ssh://root@127.0.0.2\n  b:\n    url: ssh://root@127.0.0.3\n', 'duplicate', /^\/c\.yaml:4: not valid YAML/],
    ['hosts:\n  b: [\n', 'syntax', /^\/c\.yaml:\d+: not valid YAML/],
    ['- a\n- b\n', 'top-level list', /^\/c\.yaml:1: the top level must be a mapping/],
    ['hosts: [a, b]\n', 'hosts list', /^\/c\.yaml:1: hosts must be a mapping/],
    ['hosts:\n  b: ssh://root@127.0.0.2\n', 'host as string', /^\/c\.yaml:2: host "b" must be a mapping/],
    ['hosts:\n  b:\n    url: 22\n', 'url not a string', /^\/c\.yaml:3: url must be a string/],
    ['knownHosts: 3\n', 'knownHosts number', /^\/c\.yaml:1: knownHosts must be a file path/],
    ['a: 1\n---\nb: 2\n', 'two documents', /^\/c\.yaml:\d+: not valid YAML/],
  ];
  for (const [text, what, re] of cases) {
    assert.equal(codeOf(() => parseHostsConfig(text, '/c.yaml')), 'ECONFIG', what);
    assert.match(messageOf(() => parseHostsConfig(text, '/c.yaml')), re, what);
  }
});

test('identity files are checked like OpenSSH does', async () => {
  assert.deepEqual((await checkIdentityFile(key)).encrypted, false);
  assert.equal(await codeOfAsync(() => checkIdentityFile(path.join(dir, 'nope'))), 'EINVAL_ARG');
  assert.equal(await codeOfAsync(() => checkIdentityFile(dir)), 'EINVAL_ARG');
  const open = path.join(dir, 'open_key');
  writeFileSync(open, readFileSync(key));
  chmodSync(open, 0o644);
  assert.equal(await codeOfAsync(() => checkIdentityFile(open)), 'EINVAL_ARG');
  chmodSync(open, 0o640);
  assert.equal(await codeOfAsync(() => checkIdentityFile(open, { code: 'EHOST_AUTH' })), 'EHOST_AUTH');
  const pub = path.join(dir, 'pub_only');
  writeFileSync(pub, readFileSync(`${key}.pub`), { mode: 0o600 });
  assert.equal(await codeOfAsync(() => checkIdentityFile(pub)), 'EINVAL_ARG');
  const junk = path.join(dir, 'junk');
  writeFileSync(junk, 'not a key\n', { mode: 0o600 });
  assert.equal(await codeOfAsync(() => checkIdentityFile(junk)), 'EINVAL_ARG');
  const enc = path.join(dir, 'enc');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
  assert.equal(await codeOfAsync(() => checkIdentityFile(enc)), 'EINVAL_ARG');
  assert.equal((await checkIdentityFile(enc, { allowEncrypted: true })).encrypted, true);
});

test('add, list and remove keep comments, write 0600 and reload', async () => {
  const file = path.join(dir, 'etc', 'config.yaml');
  assert.deepEqual((await loadHostsConfig(file)).hosts, [], 'a missing file is an empty config');
  const b = await addHost(file, {
    name: 'b',
    url: 'ssh://root@127.0.0.2:2222',
    identity: key,
    command: ['tsmigrate', '--root', '/var/lib/tsm-b'],
    knownHosts: path.join(dir, 'kh'),
    trustOnFirstUse: true,
  });
  assert.equal(b.identity, key);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  // a comment written by hand survives later edits
  writeFileSync(file, `# peers of this node\n${readFileSync(file, 'utf8')}`, { mode: 0o600 });
  const warnings: string[] = [];
  await addHost(file, { name: 'c', url: 'ssh://root@127.0.0.3' }, { warn: (m) => warnings.push(m) });
  assert.deepEqual(warnings, []);
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'c', url: 'ssh://root@127.0.0.4' })), 'EEXIST_HOST');
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'C', url: 'ssh://root@127.0.0.4' })), 'EINVAL_NAME');
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'd', url: 'ssh://127.0.0.4' })), 'EINVAL_ARG');
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'd', url: 'ssh://root@127.0.0.4', identity: path.join(dir, 'nope') })), 'EINVAL_ARG');
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'd', url: 'ssh://root@127.0.0.4', command: ['a', ''] })), 'EINVAL_ARG');
  let cfg = await loadHostsConfig(file);
  assert.deepEqual(
    cfg.hosts.map((h) => [h.name, h.url, h.trustOnFirstUse]),
    [
      ['b', 'ssh://root@127.0.0.2:2222', true],
      ['c', 'ssh://root@127.0.0.3', false],
    ],
  );
  assert.deepEqual(getHost(cfg, 'b'), b);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /^# peers of this node\n/);
  assert.match(text, /command: \[ tsmigrate, --root, \/var\/lib\/tsm-b \]/);
  assert.equal((await removeHost(file, 'b')).name, 'b');
  assert.equal(await codeOfAsync(() => removeHost(file, 'b')), 'ENOENT_HOST');
  cfg = await loadHostsConfig(file);
  assert.deepEqual(cfg.hosts.map((h) => h.name), ['c']);
  assert.match(readFileSync(file, 'utf8'), /^# peers of this node\n/);
  await removeHost(file, 'c');
  assert.deepEqual((await loadHostsConfig(file)).hosts, []);
  await addHost(file, { name: 'e', url: 'ssh://root@127.0.0.5' });
  assert.deepEqual((await loadHostsConfig(file)).hosts.map((h) => h.name), ['e'], 'adding after removing the last host works');
});

test('an invalid file is never overwritten by add', async () => {
  const file = path.join(dir, 'bad.yaml');
  const bad = 'hosts:\n  b:\n    url: nope\n';
  writeFileSync(file, bad);
  assert.equal(await codeOfAsync(() => addHost(file, { name: 'c', url: 'ssh://root@127.0.0.3' })), 'ECONFIG');
  assert.equal(readFileSync(file, 'utf8'), bad);
});

test('an encrypted identity is accepted by add with a warning (ssh-agent may hold it)', async () => {
  const enc = path.join(dir, 'enc2');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret', '-f', enc]);
  const warnings: string[] = [];
  await addHost(path.join(dir, 'enc.yaml'), { name: 'x', url: 'ssh://root@127.0.0.6', identity: enc }, { warn: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', /passphrase/);
});
