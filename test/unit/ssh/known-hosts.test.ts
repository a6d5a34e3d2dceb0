import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  appendKnownHost,
  fingerprint,
  hashKnownHostName,
  keyTypeOf,
  KnownHosts,
  knownHostName,
  matchPatternList,
  parseKnownHosts,
  wildcardMatch,
} from '../../../src/ssh/known-hosts.js';

let dir = '';
const keys: Record<string, { pub: string; blob: Buffer; type: string; file: string }> = {};

function keygen(name: string, type: string, bits?: number): void {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', file]);
  const pub = readFileSync(`${file}.pub`, 'utf8').trim();
  const [t, b64] = pub.split(' ');
  keys[name] = { pub: `${t} ${b64}`, blob: Buffer.from(b64 ?? '', 'base64'), type: t ?? '', file: `${file}.pub` };
}
const k = (name: string) => {
  const v = keys[name];
  assert.ok(v, name);
  return v;
};

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tsm-kh-'));
  keygen('ed1', 'ed25519');
  keygen('ed2', 'ed25519');
  keygen('ec1', 'ecdsa', 256);
  keygen('rsa1', 'rsa', 2048);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('fingerprints match ssh-keygen -l', () => {
  for (const name of ['ed1', 'ec1', 'rsa1']) {
    const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', k(name).file], { encoding: 'utf8' });
    assert.equal(fingerprint(k(name).blob), out.split(' ')[1]);
    assert.equal(keyTypeOf(k(name).blob), k(name).type);
  }
  assert.equal(keyTypeOf(Buffer.from([0, 0, 0, 9, 1])), null);
});

test('names: bare on port 22, [host]:port otherwise, lowercased', () => {
  assert.equal(knownHostName('127.0.0.2', 22), '127.0.0.2');
  assert.equal(knownHostName('127.0.0.2', 2222), '[127.0.0.2]:2222');
  assert.equal(knownHostName('Node-B.Example', 22), 'node-b.example');
});

test('wildcards and negation follow OpenSSH', () => {
  assert.ok(wildcardMatch('127.0.0.2', '127.0.0.*'));
  assert.ok(wildcardMatch('127.0.0.2', '127.0.0.?'));
  assert.ok(!wildcardMatch('127.0.0.22', '127.0.0.?'));
  assert.ok(wildcardMatch('[127.0.0.2]:2222', '*'));
  assert.ok(wildcardMatch('abc', 'a*b*c'));
  assert.ok(!wildcardMatch('abd', 'a*c'));
  assert.ok(wildcardMatch('', '*'));
  assert.equal(matchPatternList('127.0.0.5', ['127.0.0.*', '!127.0.0.5']), -1);
  assert.equal(matchPatternList('127.0.0.5', ['!127.0.0.5', '127.0.0.*']), -1, 'negation wins wherever it is');
  assert.equal(matchPatternList('127.0.0.6', ['127.0.0.*', '!127.0.0.5']), 1);
  assert.equal(matchPatternList('127.0.0.6', ['!127.0.0.5']), 0, 'a negation alone matches nothing');
  assert.equal(matchPatternList('HOST', ['host']), 1);
});

test('plain entries: comma lists, [host]:port, comments, blank lines', () => {
  const text = [
    '# a comment',
    '',
    `127.0.0.2,node-b ${k('ed1').pub} root@b`,
    `[127.0.0.3]:2222 ${k('ed2').pub}`,
    `   [127.0.0.*]:2299,!127.0.0.9 ${k('ec1').pub}`,
    '\t',
  ].join('\n');
  const kh = KnownHosts.parse(text, 'kh');
  assert.equal(kh.problems.length, 0);
  assert.equal(kh.entries.length, 3);
  assert.equal(kh.entries[0]?.line, 3);
  assert.equal(kh.entries[0]?.comment, 'root@b');
  assert.equal(kh.verify('127.0.0.2', 22, k('ed1').blob), 'match');
  assert.equal(kh.verify('NODE-B', 22, k('ed1').blob), 'match');
  assert.equal(kh.verify('127.0.0.2', 2222, k('ed1').blob), 'unknown', 'a port-22 entry does not cover other ports');
  assert.equal(kh.verify('127.0.0.3', 2222, k('ed2').blob), 'match');
  assert.equal(kh.verify('127.0.0.3', 22, k('ed2').blob), 'unknown');
  assert.equal(kh.verify('127.0.0.7', 2299, k('ec1').blob), 'match');
  assert.equal(kh.lookup('127.0.0.7', 2299, 'ecdsa-sha2-nistp256').length, 1);
  assert.equal(kh.lookup('127.0.0.7', 2299, 'ssh-ed25519').length, 0);
});

test('mismatch (same key type, other key) versus unknown (no key of that type)', () => {
  const kh = KnownHosts.parse(`[127.0.0.2]:2222 ${k('ed1').pub}\n`);
  assert.equal(kh.verify('127.0.0.2', 2222, k('ed2').blob), 'mismatch');
  const d = kh.check('127.0.0.2', 2222, k('ed2').blob);
  assert.equal(d.entry?.line, 1);
  assert.equal(fingerprint(d.entry?.key ?? Buffer.alloc(0)), fingerprint(k('ed1').blob));
  const u = kh.check('127.0.0.2', 2222, k('rsa1').blob);
  assert.equal(u.status, 'unknown');
  assert.equal(u.known.length, 1, 'other key types known for the host are reported');
  assert.equal(kh.verify('127.0.0.4', 2222, k('ed1').blob), 'unknown');
  // a matching line anywhere wins over a mismatching one
  const two = KnownHosts.parse(`[127.0.0.2]:2222 ${k('ed2').pub}\n[127.0.0.2]:2222 ${k('ed1').pub}\n`);
  assert.equal(two.verify('127.0.0.2', 2222, k('ed1').blob), 'match');
});

test('negated patterns exclude a host', () => {
  const kh = KnownHosts.parse(`127.0.0.*,!127.0.0.5 ${k('ed1').pub}\n`);
  assert.equal(kh.verify('127.0.0.4', 22, k('ed1').blob), 'match');
  assert.equal(kh.verify('127.0.0.5', 22, k('ed1').blob), 'unknown');
});

test('@revoked refuses the key; @cert-authority never matches', () => {
  const kh = KnownHosts.parse(
    [`@revoked * ${k('ed2').pub}`, `[127.0.0.2]:2222 ${k('ed2').pub}`, `@cert-authority *.example ${k('ec1').pub}`].join('\n'),
  );
  assert.equal(kh.verify('127.0.0.2', 2222, k('ed2').blob), 'revoked', 'revocation wins over a plain entry');
  assert.equal(kh.verify('a.example', 22, k('ec1').blob), 'unknown');
  assert.ok(kh.lookup('a.example', 22).every((e) => e.marker !== 'cert-authority'));
});

test('malformed lines are skipped and reported', () => {
  const [t, b64] = k('ed1').pub.split(' ');
  const text = [
    `@bogus host ${k('ed1').pub}`,
    'onlyhost',
    `host ssh-rsa ${b64}`, // declared type differs from the key's
    `host ${t} !!!notbase64`,
    `|1|short|short ${k('ed1').pub}`,
    `host ${k('ed1').pub}`,
  ].join('\n');
  const r = parseKnownHosts(text, 'f');
  assert.deepEqual(r.problems.map((p) => p.line), [1, 2, 3, 4, 5]);
  assert.equal(r.entries.length, 1);
  assert.equal(r.entries[0]?.line, 6);
});

test('hashed entries made by ssh-keygen -H are matched', () => {
  const file = path.join(dir, 'known_hosts_h');
  writeFileSync(
    file,
    [`127.0.0.2 ${k('ed1').pub}`, `[127.0.0.3]:2222 ${k('ed2').pub}`, `[127.0.0.4]:2200 ${k('rsa1').pub}`, `127.0.0.5 ${k('ec1').pub}`].join('\n') + '\n',
  );
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  const text = readFileSync(file, 'utf8');
  assert.ok(!text.includes('127.0.0'), 'ssh-keygen hashed every name');
  const kh = KnownHosts.parse(text, file);
  assert.equal(kh.problems.length, 0);
  assert.ok(kh.entries.every((e) => e.hosts.kind === 'hashed'));
  assert.equal(kh.verify('127.0.0.2', 22, k('ed1').blob), 'match');
  assert.equal(kh.verify('127.0.0.3', 2222, k('ed2').blob), 'match');
  assert.equal(kh.verify('127.0.0.4', 2200, k('rsa1').blob), 'match');
  assert.equal(kh.verify('127.0.0.5', 22, k('ec1').blob), 'match');
  assert.equal(kh.verify('127.0.0.3', 22, k('ed2').blob), 'unknown');
  assert.equal(kh.verify('127.0.0.3', 2222, k('ed1').blob), 'mismatch');
  // our HMAC with ssh-keygen's salt gives ssh-keygen's hash
  const second = text.split('\n')[1] ?? '';
  const [field] = second.split(' ');
  const salt = Buffer.from(field?.split('|')[2] ?? '', 'base64');
  assert.equal(hashKnownHostName('[127.0.0.3]:2222', salt), field);
});

test('appendKnownHost writes hashed lines OpenSSH finds, 0600, keeping the file well-formed', async () => {
  const file = path.join(dir, 'sub', 'known_hosts_a');
  const line = await appendKnownHost(file, '127.0.0.2', 2222, k('ed1').blob);
  assert.match(line, /^\|1\|[A-Za-z0-9+/=]{28}\|[A-Za-z0-9+/=]{28} ssh-ed25519 /);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.2]:2222', '-f', file], { encoding: 'utf8' });
  assert.ok(found.includes(k('ed1').pub.split(' ')[1] ?? 'x'), 'ssh-keygen -F finds our hashed entry');
  // a file without a final newline
  writeFileSync(file, readFileSync(file, 'utf8').trimEnd());
  await appendKnownHost(file, '127.0.0.3', 22, k('ed2').blob, { hash: false });
  const text = readFileSync(file, 'utf8');
  assert.equal(text.split('\n').filter((l) => l !== '').length, 2);
  assert.ok(text.endsWith(`127.0.0.3 ${k('ed2').pub}\n`));
  const kh = await KnownHosts.load([file, path.join(dir, 'missing')]);
  assert.equal(kh.verify('127.0.0.2', 2222, k('ed1').blob), 'match');
  assert.equal(kh.verify('127.0.0.3', 22, k('ed2').blob), 'match');
  execFileSync('ssh-keygen', ['-F', '127.0.0.3', '-f', file]);
});
