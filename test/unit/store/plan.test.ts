import { test } from 'node:test';
import assert from 'node:assert/strict';
import { candidates, parseAt } from '../../../src/restore/choose.js';
import { parseStoreSpec } from '../../../src/store/open.js';
import { checkSchedule, type Schedule } from '../../../src/schedule/schedules.js';
import { parseHostsConfig } from '../../../src/hosts/config.js';
import { isTsmError } from '../../../src/errors/errors.js';

const snaps = [
  { id: 'web-1', container: 'web', createdAt: '2026-11-29T01:00:00.000Z' },
  { id: 'web-3', container: 'web', createdAt: '2026-11-29T03:00:00.000Z' },
  { id: 'db-1', container: 'db', createdAt: '2026-11-29T02:30:00.000Z' },
  { id: 'web-2', container: 'web', createdAt: '2026-11-29T02:00:00.000Z' },
];

test('candidates: --latest is every checkpoint of the container, newest first, with fallback; --at and an id are one, without', () => {
  assert.deepEqual(candidates(snaps, 'web', { kind: 'latest' }), { ids: ['web-3', 'web-2', 'web-1'], fallback: true });
  assert.deepEqual(candidates(snaps, 'web', { kind: 'at', time: new Date('2026-11-29T02:59:59Z') }), { ids: ['web-2'], fallback: false });
  assert.deepEqual(candidates(snaps, 'web', { kind: 'at', time: new Date('2026-11-29T02:00:00Z') }), { ids: ['web-2'], fallback: false });
  assert.deepEqual(candidates(snaps, 'web', { kind: 'at', time: new Date('2026-11-29T00:00:00Z') }), { ids: [], fallback: false });
  assert.deepEqual(candidates(snaps, 'web', { kind: 'id', id: 'web-1' }), { ids: ['web-1'], fallback: false });
  assert.deepEqual(candidates(snaps, 'nope', { kind: 'latest' }), { ids: [], fallback: true });
  assert.throws(() => candidates(snaps, 'web', { kind: 'id', id: 'db-1' }), /checkpoint db-1 is of container "db", not "web"/);
});

test('parseAt: ISO times and "ago" offsets; anything else is one clear error', () => {
  const now = new Date('2026-11-29T12:00:00Z');
  assert.equal(parseAt('2026-11-29T05:00:00Z', now).toISOString(), '2026-11-29T05:00:00.000Z');
  assert.equal(parseAt('2h', now).toISOString(), '2026-11-29T10:00:00.000Z');
  assert.equal(parseAt('30m', now).toISOString(), '2026-11-29T11:30:00.000Z');
  assert.equal(parseAt('1d', now).toISOString(), '2026-11-28T12:00:00.000Z');
  for (const bad of ['yesterday', '2h30', '', '29/11/2026', '2026-13-45']) {
    assert.throws(() => parseAt(bad, now), (e) => isTsmError(e) && e.code === 'EINVAL_ARG' && /invalid --at/.test(e.message), bad);
  }
});

test('parseStoreSpec: local, paths, HOST:/PATH, names; junk refused', () => {
  assert.deepEqual(parseStoreSpec(undefined, '/var/lib/tsmigrate'), { kind: 'local', dir: '/var/lib/tsmigrate/store', label: 'local' });
  assert.deepEqual(parseStoreSpec('local', '/r'), { kind: 'local', dir: '/r/store', label: 'local' });
  assert.deepEqual(parseStoreSpec('/srv/st/', '/r'), { kind: 'local', dir: '/srv/st', label: '/srv/st/' });
  assert.deepEqual(parseStoreSpec('host-c:/srv/st', '/r'), { kind: 'remote', host: 'host-c', dir: '/srv/st' });
  assert.deepEqual(parseStoreSpec('backup', '/r'), { kind: 'named', name: 'backup' });
  for (const bad of ['host-c:relative', 'Host:/x', 'a b', '../x', 'h:']) assert.throws(() => parseStoreSpec(bad, '/r'), /invalid --store/, bad);
});

test('checkSchedule: exactly one of every/cron, a valid retention, a valid name', () => {
  const base: Schedule = { container: 'web', every: '15m', cron: null, keep: { keepLast: 3, keepHourly: 0, keepDaily: 0, keepWeekly: 0 }, store: null, encryptKey: null, tcpEstablished: false, createdAt: '2026-11-29T00:00:00Z' };
  assert.equal(checkSchedule(base), base);
  assert.equal(checkSchedule({ ...base, every: null, cron: '0 * * * *' }).cron, '0 * * * *');
  assert.throws(() => checkSchedule({ ...base, cron: '0 * * * *' }), /contradict/);
  assert.throws(() => checkSchedule({ ...base, every: null }), /when should it run/);
  assert.throws(() => checkSchedule({ ...base, every: 'soon' }), /invalid --every/);
  assert.throws(() => checkSchedule({ ...base, keep: { keepLast: 0, keepHourly: 0, keepDaily: 0, keepWeekly: 0 } }), /keep at least one/);
  assert.throws(() => checkSchedule({ ...base, container: 'Bad Name' }), (e) => isTsmError(e) && e.code === 'EINVAL_NAME');
});

test('named stores in the config: location and key file; bad entries name the line', () => {
  const cfg = parseHostsConfig('stores:\n  backup:\n    location: host-c:/srv/tsm\n    encryptKey: keys/backup.key\n  here:\n    location: /srv/local\n', '/etc/tsmigrate/config.yaml');
  assert.deepEqual(cfg.stores, [
    { name: 'backup', location: 'host-c:/srv/tsm', encryptKey: '/etc/tsmigrate/keys/backup.key' },
    { name: 'here', location: '/srv/local', encryptKey: null },
  ]);
  assert.throws(() => parseHostsConfig('stores:\n  backup:\n    location: relative\n', '/c.yaml'), /\/c\.yaml:2: store "backup" needs location/);
  assert.throws(() => parseHostsConfig('stores:\n  backup:\n    location: /x\n    colour: red\n', '/c.yaml'), /\/c\.yaml:4: unknown key "colour" in store "backup"/);
});
