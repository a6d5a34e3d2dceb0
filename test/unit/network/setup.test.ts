import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  defaultNetworkSettings,
  makeNetworkSettings,
  parseNetMode,
  planNetwork,
  releaseNetwork,
  validateNetworkSettings,
} from '../../../src/network/setup.js';
import { hostVethName } from '../../../src/network/veth.js';
import { isValidIfName } from '../../../src/network/bridge.js';
import { isTsmError } from '../../../src/errors/errors.js';

test('defaultNetworkSettings reads the environment', () => {
  assert.deepEqual(defaultNetworkSettings({}), { bridge: 'tsm0', subnet: '10.88.0.0/16', leaseDir: '/run/tsmigrate/ipam/10.88.0.0_16' });
  assert.deepEqual(
    defaultNetworkSettings({ TSMIGRATE_BRIDGE: 'br9', TSMIGRATE_SUBNET: '10.9.0.0/24', TSMIGRATE_IPAM_DIR: '/tmp/ipam' }),
    { bridge: 'br9', subnet: '10.9.0.0/24', leaseDir: '/tmp/ipam/10.9.0.0_24' },
  );
  assert.equal(makeNetworkSettings({ leaseDir: '/x/y' }).leaseDir, '/x/y');
  assert.throws(() => validateNetworkSettings(defaultNetworkSettings({ TSMIGRATE_BRIDGE: 'a/b' })), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  assert.throws(() => validateNetworkSettings(defaultNetworkSettings({ TSMIGRATE_BRIDGE: 'much-too-long-name' })), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  assert.throws(() => validateNetworkSettings(defaultNetworkSettings({ TSMIGRATE_SUBNET: '10.9.0.1/24' })), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  validateNetworkSettings(defaultNetworkSettings({}));
});

test('parseNetMode', () => {
  assert.equal(parseNetMode('none'), 'none');
  assert.equal(parseNetMode('bridge'), 'bridge');
  assert.throws(() => parseNetMode('host'), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && /--net 'host'/.test(e.message));
});

test('hostVethName is deterministic, short, and distinct per root and name', () => {
  const a = hostVethName('/var/lib/tsmigrate', 'web');
  assert.match(a, /^tsm-[0-9a-f]{8}$/);
  assert.ok(a.length <= 15 && isValidIfName(a));
  assert.equal(hostVethName('/var/lib/tsmigrate/', 'web'), a);
  assert.notEqual(hostVethName('/var/lib/tsmigrate2', 'web'), a);
  assert.notEqual(hostVethName('/var/lib/tsmigrate', 'web2'), a);
});

test('planNetwork: none, bridge, --ip with none', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'tsm-plan-'));
  try {
    const settings = makeNetworkSettings({ bridge: 'tsmt0', subnet: '10.213.0.0/24', ipamBase: base });
    const owner = { root: '/var/lib/tsm-a', container: 'web' };
    assert.deepEqual(await planNetwork('none', undefined, owner, settings), { mode: 'none', owner });
    await assert.rejects(planNetwork('none', '10.213.0.5', owner, settings), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && /--ip/.test(e.message) && !!e.fix);
    const plan = await planNetwork('bridge', undefined, owner, settings);
    assert.deepEqual(plan, {
      mode: 'bridge',
      ip: '10.213.0.2',
      prefix: 24,
      gateway: '10.213.0.1',
      hostVeth: hostVethName(owner.root, owner.container),
      bridge: 'tsmt0',
      subnet: '10.213.0.0/24',
      leaseDir: settings.leaseDir,
      owner,
    });
    const p2 = await planNetwork('bridge', '10.213.0.77', { root: '/r', container: 'x' }, settings);
    assert.equal(p2.ip, '10.213.0.77');
    await assert.rejects(planNetwork('bridge', '10.213.0.77', { root: '/r', container: 'y' }, settings), (e: unknown) => isTsmError(e, 'ENETWORK'));
    await assert.rejects(planNetwork('bridge', '10.99.0.7', { root: '/r', container: 'y' }, settings), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && e.fix === 'choose a free address in 10.213.0.0/24 or omit --ip');
    // Release of the lease side is idempotent (the veth does not exist: missing is fine).
    if (process.getuid?.() === 0) {
      await releaseNetwork(plan, settings);
      await releaseNetwork(plan, settings);
      await releaseNetwork(p2, settings);
      assert.deepEqual(await readdir(settings.leaseDir), []);
      await assert.rejects(releaseNetwork({ ...plan, hostVeth: 'eth0' }, settings), (e: unknown) => isTsmError(e, 'ENETWORK') && /not a tsmigrate veth name/.test(e.message));
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
