import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { loadHostsConfig, parseHostsConfig, trustKey, untrustKey } from '../../../src/hosts/config.js';

const line = (n: number, c = 'b') => `tsmigrate-ed25519 ${Buffer.alloc(32, n).toString('base64')} ${c}`;

test('trust: a list of public key lines; anything else refused with file:line', () => {
  const cfg = parseHostsConfig(`trust:\n  - ${line(1)}\n  - ${line(2, 'fleet')}\n`, '/etc/t.yaml');
  assert.deepEqual(cfg.trust.map((k) => k.comment), ['b', 'fleet']);
  assert.equal(parseHostsConfig('trust:\n', '/etc/t.yaml').trust.length, 0);
  for (const [text, want] of [
    ['trust: yes\n', /t\.yaml:1: trust must be a list/],
    [`trust:\n  - ssh-ed25519 AAAA x\n`, /t\.yaml:2: not a tsmigrate public key/],
    [`trust:\n  - ${line(1)}\n  - {a: 1}\n`, /t\.yaml:3: each item of trust must be a public key line/],
    [`trust:\n  - "${line(1, 'x\\u001b[31m')}"\n`, /comment must be printable/],
  ] as const) {
    assert.throws(() => parseHostsConfig(text, '/etc/t.yaml'), (e) => isTsmError(e, 'ECONFIG') && want.test(e.message), text);
  }
});

test('key trust / untrust edit the config and keep it loadable; trusting twice adds nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-trustcfg-'));
  try {
    const file = path.join(dir, 'config.yaml');
    assert.equal((await trustKey(file, line(1))).added, true);
    assert.equal((await trustKey(file, `  ${line(1)}  `)).added, false);
    const k2 = (await trustKey(file, line(2, 'c'))).key;
    assert.deepEqual((await loadHostsConfig(file)).trust.map((k) => k.comment), ['b', 'c']);
    await untrustKey(file, k2.fingerprint);
    assert.deepEqual((await loadHostsConfig(file)).trust.map((k) => k.comment), ['b']);
    await assert.rejects(untrustKey(file, k2.fingerprint), (e) => isTsmError(e, 'EINVAL_ARG') && /does not trust/.test(e.message));
    await assert.rejects(trustKey(file, 'nonsense'), (e) => isTsmError(e, 'EINVAL_ARG'));
    assert.match(readFileSync(file, 'utf8'), /^trust:\n {2}- tsmigrate-ed25519 /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
