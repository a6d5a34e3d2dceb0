import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentAccess, parseAgentSettings } from '../../../src/agent/access.js';
import { allowedMethods, resolveRoles, roleRefusal, ROLE_METHODS, ROLES, type Role } from '../../../src/agent/roles.js';
import { agentSpec } from '../../../src/agent/schema.js';
import { TsmError } from '../../../src/errors/errors.js';
import { parseHostsConfig } from '../../../src/hosts/config.js';
import { checkStorePath, placeStore } from '../../../src/store/store-dirs.js';

const RECEIVE = ['preflight', 'putImage', 'begin', 'putUpper', 'putImages', 'prepare', 'commit', 'abort', 'status'];
const STORE = Object.keys(agentSpec).filter((m) => m.startsWith('store'));

test('the role table: each method, which roles allow it', () => {
  const table: Array<[string, Role[]]> = [
    ['hello', ['migrate', 'store', 'restore']],
    ['containerStatus', ['migrate', 'store', 'restore']],
    ...RECEIVE.map((m): [string, Role[]] => [m, ['migrate', 'restore']]),
    ['putLogs', ['migrate']],
    ['warm', ['migrate']],
    ['probe', ['migrate']],
    ...STORE.map((m): [string, Role[]] => [m, ['store']]),
  ];
  // every method of the protocol is in the table, once
  assert.deepEqual(table.map(([m]) => m).sort(), Object.keys(agentSpec).sort());
  for (const [method, roles] of table) {
    for (const r of ROLES) assert.equal(allowedMethods([r]).has(method), roles.includes(r), `${method} for ${r}`);
  }
  // nothing outside the protocol, and no prototype names
  for (const r of ROLES) for (const m of ROLE_METHODS[r]) assert.ok(Object.hasOwn(agentSpec, m), m);
  assert.equal(allowedMethods(['store']).has('constructor'), false);
});

test('a refusal names the method, the roles served and the fix; an allowed method is not refused', () => {
  assert.equal(roleRefusal('storeOpen', ['store']), undefined);
  const e = roleRefusal('putImages', ['store']);
  assert.ok(e instanceof TsmError);
  assert.equal(e.code, 'EFORBIDDEN');
  assert.match(e.message, /serves this key as store: putImages needs the role migrate or restore/);
  assert.match(e.fix ?? '', /--role migrate/);
  assert.match(roleRefusal('storeLock', ['migrate', 'restore'])!.message, /as migrate, restore: storeLock needs the role store/);
  assert.match(roleRefusal('nosuch', ROLES)!.message, /needs the role \(none\)/);
});

test('resolveRoles: --role narrows the config, never widens it', () => {
  const cases: Array<[string[], Role[] | undefined, Role[] | RegExp]> = [
    [[], undefined, ['migrate', 'store', 'restore']],
    [['store'], undefined, ['store']],
    [['store,restore'], undefined, ['store', 'restore']],
    [['restore', 'migrate'], undefined, ['migrate', 'restore']],
    [[], ['store'], ['store']],
    [['store'], ['store', 'migrate'], ['store']],
    [['migrate'], ['store'], /--role migrate is not allowed by this host's config/],
    [['root'], undefined, /unknown agent role "root"/],
    [[], [], []],
  ];
  for (const [argv, cfg, want] of cases) {
    if (want instanceof RegExp) assert.throws(() => resolveRoles(argv, cfg), want, argv.join(' '));
    else assert.deepEqual(resolveRoles(argv, cfg), want, argv.join(' '));
  }
});

test('agentAccess: store directories from argv or config; a restricted store key needs one; nothing configured: every role, any path', () => {
  const W = 'config.yaml agent.storeDirs';
  assert.deepEqual(agentAccess({}, {}, W), { roles: ['migrate', 'store', 'restore'], storeRoots: 'any' });
  assert.deepEqual(agentAccess({ roles: ['store'], storeDirs: ['/srv/b/'] }, {}, W), { roles: ['store'], storeRoots: ['/srv/b'] });
  assert.deepEqual(agentAccess({ roles: ['migrate'] }, {}, W), { roles: ['migrate'], storeRoots: [] });
  assert.deepEqual(agentAccess({}, { storeDirs: ['/srv/a', '/srv/a'] }, W), { roles: ['migrate', 'store', 'restore'], storeRoots: ['/srv/a'] });
  assert.deepEqual(agentAccess({ storeDirs: ['/srv/a/host1'] }, { storeDirs: ['/srv/a'] }, W).storeRoots, ['/srv/a/host1']);
  assert.throws(() => agentAccess({ roles: ['store'] }, {}, W), /no store directory is configured/);
  assert.throws(() => agentAccess({}, { roles: ['store'] }, W), /no store directory is configured/);
  assert.throws(() => agentAccess({ storeDirs: ['/srv/other'] }, { storeDirs: ['/srv/a'] }, W), /--store-dir \/srv\/other is outside the store directories of this host's config/);
  for (const bad of ['relative', '/', '/proc/x', '/dev']) assert.throws(() => agentAccess({ storeDirs: [bad] }, {}, W), /is not allowed/, bad);
});

test('the config: agent roles and store directories, unknown keys and roles refused with the line', () => {
  const cfg = parseHostsConfig('agent:\n  roles: [store, restore]\n  storeDirs: [/srv/backups]\n', '/etc/tsmigrate/config.yaml');
  assert.deepEqual(cfg.agent, { roles: ['store', 'restore'], storeDirs: ['/srv/backups'] });
  assert.deepEqual(parseHostsConfig('hosts: {}\n', '/c.yaml').agent, {});
  assert.throws(() => parseHostsConfig('agent:\n  roles: [root]\n', '/c.yaml'), /\/c.yaml:2: agent.roles must be a list of migrate, store, restore/);
  assert.throws(() => parseHostsConfig('agent:\n  allow: all\n', '/c.yaml'), /unknown key "allow" in agent/);
  assert.throws(() => parseAgentSettings(['store']), /agent must be a mapping/);
});

test('placeStore: a store path lies in a configured directory, or is refused', () => {
  const roots = ['/srv/backups', '/srv/backups/deep', '/data/tsm'];
  assert.deepEqual(placeStore('/srv/backups/web', roots), { root: '/srv/backups', rel: 'web', dir: '/srv/backups/web' });
  assert.deepEqual(placeStore('/srv/backups/deep/x/y', roots), { root: '/srv/backups/deep', rel: 'x/y', dir: '/srv/backups/deep/x/y' });
  assert.deepEqual(placeStore('/data/tsm', roots), { root: '/data/tsm', rel: '', dir: '/data/tsm' });
  assert.deepEqual(placeStore('/tmp/s/', 'any'), { root: '/', rel: 'tmp/s', dir: '/tmp/s' });
  for (const p of ['/etc', '/srv/backupsX', '/srv', '/data/tsm2/x']) assert.throws(() => placeStore(p, roots), /is outside this host's store directories/, p);
  for (const p of ['/srv/backups/../../etc', '/srv/backups/./x', 'srv/backups', '/', '/proc/1', '/run/tsmigrate/ipam']) {
    assert.throws(() => placeStore(p, roots), /is not allowed/, p);
  }
  assert.throws(() => placeStore('/srv/x', []), /none configured/);
  assert.equal(checkStorePath('/srv/x/'), '/srv/x');
});
