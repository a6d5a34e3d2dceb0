import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnv, parseHostname, parseRunRequest, parseUser, parseWorkdir } from '../../../src/cli/parse.js';
import { TsmError } from '../../../src/errors/errors.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof TsmError, `expected a TsmError, got ${String(e)}`);
    assert.ok(!e.oneLine().includes('\n'), 'errors are one line');
    assert.ok(e.fix, 'errors say how to fix them');
    return e.code;
  }
  return 'no error';
};

test('run options map to a request with limits', () => {
  const r = parseRunRequest('web1', ['sleep', '100'], {
    image: 'busybox',
    memory: '64m',
    memoryReservation: '32m',
    cpus: '0.5',
    cpuWeight: '200',
    cpusetCpus: '0',
    pidsLimit: '50',
    hostname: 'box',
    env: ['A=1', 'B=x=y'],
    workdir: '/tmp',
    user: '1000:1000',
    net: 'bridge',
    ip: '10.88.0.5',
  }, '0-1');
  assert.deepEqual(r.limits, { memoryBytes: 64 << 20, memoryReservationBytes: 32 << 20, cpus: 0.5, cpuWeight: 200, cpusetCpus: '0', pidsLimit: 50 });
  assert.deepEqual(r.env, ['A=1', 'B=x=y']);
  assert.deepEqual(r.user, { uid: 1000, gid: 1000 });
  assert.equal(r.hostname, 'box');
  assert.equal(r.net, 'bridge');
  assert.equal(r.ip, '10.88.0.5');
});

const badCases: Array<[string, () => unknown, string]> = [
  ['uppercase name', () => parseRunRequest('Web', ['x'], { image: 'i' }), 'EINVAL_NAME'],
  ['name with slash', () => parseRunRequest('a/b', ['x'], { image: 'i' }), 'EINVAL_NAME'],
  ['64-char name', () => parseRunRequest('a'.repeat(64), ['x'], { image: 'i' }), 'EINVAL_NAME'],
  ['missing image', () => parseRunRequest('a', ['x'], {}), 'EINVAL_ARG'],
  ['bad size', () => parseRunRequest('a', ['x'], { image: 'i', memory: '12q' }), 'EINVAL_ARG'],
  ['zero size', () => parseRunRequest('a', ['x'], { image: 'i', memory: '0' }), 'EINVAL_ARG'],
  ['reservation above limit', () => parseRunRequest('a', ['x'], { image: 'i', memory: '1m', memoryReservation: '2m' }), 'EINVAL_ARG'],
  ['cpus negative', () => parseRunRequest('a', ['x'], { image: 'i', cpus: '-1' }), 'EINVAL_ARG'],
  ['cpuset offline', () => parseRunRequest('a', ['x'], { image: 'i', cpusetCpus: '7' }, '0-1'), 'EINVAL_ARG'],
  ['cpuset reversed', () => parseRunRequest('a', ['x'], { image: 'i', cpusetCpus: '1-0' }, '0-1'), 'EINVAL_ARG'],
  ['weight too big', () => parseRunRequest('a', ['x'], { image: 'i', cpuWeight: '10001' }), 'EINVAL_ARG'],
  ['net unknown', () => parseRunRequest('a', ['x'], { image: 'i', net: 'host' }), 'EINVAL_ARG'],
  ['ip without bridge', () => parseRunRequest('a', ['x'], { image: 'i', ip: '10.88.0.2' }), 'EINVAL_ARG'],
  ['env without =', () => parseEnv('FOO'), 'EINVAL_ARG'],
  ['env bad key', () => parseEnv('1A=b'), 'EINVAL_ARG'],
  ['user not numeric', () => parseUser('root'), 'EINVAL_ARG'],
  ['user missing gid', () => parseUser('1000'), 'EINVAL_ARG'],
  ['relative workdir', () => parseWorkdir('tmp'), 'EINVAL_ARG'],
  ['hostname with space', () => parseHostname('a b'), 'EINVAL_ARG'],
  ['hostname too long', () => parseHostname('a'.repeat(70)), 'EINVAL_ARG'],
];
for (const [what, fn, want] of badCases) {
  test(`rejects ${what}`, () => assert.equal(code(fn), want));
}
