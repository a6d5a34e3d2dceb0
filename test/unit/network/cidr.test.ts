import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  broadcastAddress,
  contains,
  formatCidr,
  formatIPv4,
  gatewayOf,
  isUsable,
  nthHost,
  overlaps,
  parseCidr,
  parseContainerSubnet,
  parseIPv4,
  tryParseCidr,
  usableCount,
} from '../../../src/network/cidr.js';
import { isTsmError } from '../../../src/errors/errors.js';

const ip = (s: string): number => {
  const n = parseIPv4(s);
  assert.notEqual(n, undefined, s);
  return n!;
};
const cidr = (s: string) => {
  const c = tryParseCidr(s);
  assert.ok(c, s);
  return c;
};

test('parseIPv4 / formatIPv4', () => {
  const table: Array<[string, number | undefined]> = [
    ['0.0.0.0', 0],
    ['10.88.0.1', 0x0a580001],
    ['255.255.255.255', 0xffffffff],
    ['192.168.1.254', 0xc0a801fe],
    ['256.0.0.1', undefined],
    ['10.88.0', undefined],
    ['10.88.0.1.2', undefined],
    ['010.88.0.1', undefined],
    ['10.88.0.01', undefined],
    [' 10.88.0.1', undefined],
    ['10.88.0.1/16', undefined],
    ['a.b.c.d', undefined],
    ['', undefined],
    ['1e1.0.0.1', undefined],
    ['-1.0.0.1', undefined],
    ['::1', undefined],
  ];
  for (const [text, want] of table) assert.equal(parseIPv4(text), want, JSON.stringify(text));
  for (const s of ['0.0.0.0', '10.88.0.1', '255.255.255.255', '172.16.5.9']) assert.equal(formatIPv4(ip(s)), s);
});

test('tryParseCidr / parseCidr', () => {
  const table: Array<[string, string | undefined]> = [
    ['10.88.0.0/16', '10.88.0.0/16'],
    ['10.213.0.0/24', '10.213.0.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.1/32', '10.0.0.1/32'],
    ['10.88.0.1/16', undefined], // host bits set
    ['10.88.0.0/33', undefined],
    ['10.88.0.0/016', undefined],
    ['10.88.0.0', undefined],
    ['10.88.0.0/', undefined],
    ['x/16', undefined],
  ];
  for (const [text, want] of table) {
    const c = tryParseCidr(text);
    assert.equal(c ? formatCidr(c) : undefined, want, text);
  }
  assert.equal(formatCidr(tryParseCidr('10.88.7.9/16', false)!), '10.88.0.0/16');
  assert.throws(() => parseCidr('10.88.0.1/16'), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && /host bits/.test(e.message) && /10\.88\.0\.0\/16/.test(e.fix ?? ''));
  assert.throws(() => parseCidr('nonsense'), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && !e.message.includes('\n'));
});

test('broadcast, contains, isUsable', () => {
  const s16 = cidr('10.88.0.0/16');
  assert.equal(formatIPv4(broadcastAddress(s16)), '10.88.255.255');
  assert.equal(formatIPv4(broadcastAddress(cidr('10.213.0.0/24'))), '10.213.0.255');
  assert.equal(formatIPv4(broadcastAddress(cidr('0.0.0.0/0'))), '255.255.255.255');
  const table: Array<[string, string, boolean, boolean]> = [
    // subnet, ip, contains, usable
    ['10.88.0.0/16', '10.88.0.0', true, false],
    ['10.88.0.0/16', '10.88.0.1', true, true],
    ['10.88.0.0/16', '10.88.200.7', true, true],
    ['10.88.0.0/16', '10.88.255.254', true, true],
    ['10.88.0.0/16', '10.88.255.255', true, false],
    ['10.88.0.0/16', '10.89.0.1', false, false],
    ['10.88.0.0/16', '10.87.255.255', false, false],
    ['10.213.0.0/24', '10.213.1.1', false, false],
    ['10.0.0.0/30', '10.0.0.1', true, true],
    ['10.0.0.0/30', '10.0.0.3', true, false],
    ['10.0.0.0/31', '10.0.0.0', true, true],
    ['10.0.0.0/31', '10.0.0.1', true, true],
    ['10.0.0.5/32', '10.0.0.5', true, true],
    ['10.0.0.5/32', '10.0.0.4', false, false],
    ['0.0.0.0/0', '8.8.8.8', true, true],
  ];
  for (const [s, a, c, u] of table) {
    assert.equal(contains(cidr(s), ip(a)), c, `contains ${s} ${a}`);
    assert.equal(isUsable(cidr(s), ip(a)), u, `usable ${s} ${a}`);
  }
});

test('nthHost, gatewayOf, usableCount', () => {
  const table: Array<[string, number, string | undefined]> = [
    ['10.88.0.0/16', 1, '10.88.0.1'],
    ['10.88.0.0/16', 2, '10.88.0.2'],
    ['10.88.0.0/16', 256, '10.88.1.0'],
    ['10.88.0.0/16', 65534, '10.88.255.254'],
    ['10.88.0.0/16', 65535, undefined],
    ['10.88.0.0/16', 0, undefined],
    ['10.88.0.0/16', -1, undefined],
    ['10.88.0.0/16', 1.5, undefined],
    ['10.0.0.0/30', 2, '10.0.0.2'],
    ['10.0.0.0/30', 3, undefined],
    ['10.0.0.0/31', 1, '10.0.0.0'],
    ['10.0.0.0/31', 2, '10.0.0.1'],
    ['255.255.255.0/24', 254, '255.255.255.254'],
    ['255.255.255.0/24', 255, undefined],
  ];
  for (const [s, n, want] of table) {
    const got = nthHost(cidr(s), n);
    assert.equal(got === undefined ? undefined : formatIPv4(got), want, `${s} #${n}`);
  }
  assert.equal(formatIPv4(gatewayOf(cidr('10.88.0.0/16'))), '10.88.0.1');
  assert.equal(formatIPv4(gatewayOf(cidr('10.213.0.0/24'))), '10.213.0.1');
  assert.equal(usableCount(cidr('10.88.0.0/16')), 65534);
  assert.equal(usableCount(cidr('10.213.0.0/24')), 254);
  assert.equal(usableCount(cidr('10.0.0.0/30')), 2);
  assert.equal(usableCount(cidr('10.0.0.0/31')), 2);
  assert.equal(usableCount(cidr('10.0.0.0/32')), 1);
});

test('overlaps', () => {
  const table: Array<[string, string, boolean]> = [
    ['10.88.0.0/16', '10.88.5.0/24', true],
    ['10.88.5.0/24', '10.88.0.0/16', true],
    ['10.88.0.0/16', '10.89.0.0/16', false],
    ['10.0.0.0/8', '10.213.0.0/24', true],
    ['192.0.2.0/24', '10.213.0.0/24', false],
    ['0.0.0.0/0', '10.213.0.0/24', true],
    ['10.213.0.7/32', '10.213.0.0/24', true],
  ];
  for (const [a, b, want] of table) assert.equal(overlaps(cidr(a), cidr(b)), want, `${a} ${b}`);
});

test('parseContainerSubnet', () => {
  assert.equal(formatCidr(parseContainerSubnet('10.88.0.0/16')), '10.88.0.0/16');
  assert.equal(formatCidr(parseContainerSubnet('10.213.0.0/24')), '10.213.0.0/24');
  assert.equal(formatCidr(parseContainerSubnet('172.30.0.0/30')), '172.30.0.0/30');
  for (const bad of ['10.0.0.0/31', '10.0.0.0/32', '0.0.0.0/0', '10.0.0.0/7', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/8', '240.0.0.0/8', '10.88.0.1/16', 'x']) {
    assert.throws(() => parseContainerSubnet(bad), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && !e.message.includes('\n') && !!e.fix, bad);
  }
});

test('findConflictingRoutes (bridge subnet vs host routes)', async () => {
  const { findConflictingRoutes } = await import('../../../src/network/bridge.js');
  const routes = [
    { dst: 'default', dev: 'eth0' },
    { dst: '192.0.2.0/24', dev: 'eth0' },
    { dst: '10.88.0.0/16', dev: 'tsm0' },
    { dst: '10.213.0.9', dev: 'wg0' },
    { dst: '10.0.0.0/8', dev: 'vpn0' },
  ];
  assert.deepEqual(findConflictingRoutes(routes, cidr('10.88.0.0/16'), 'tsm0'), ['10.0.0.0/8 dev vpn0']);
  assert.deepEqual(findConflictingRoutes(routes.slice(0, 4), cidr('10.88.0.0/16'), 'tsm0'), []);
  assert.deepEqual(findConflictingRoutes(routes.slice(0, 4), cidr('10.213.0.0/24'), 'tsmt0'), ['10.213.0.9 dev wg0']);
  assert.deepEqual(findConflictingRoutes(routes, cidr('192.0.2.0/28'), 'tsm0'), ['192.0.2.0/24 dev eth0']);
  assert.deepEqual(findConflictingRoutes(routes.slice(0, 4), cidr('172.20.0.0/16'), 'tsm0'), []);
});
