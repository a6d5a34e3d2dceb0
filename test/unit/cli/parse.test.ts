import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnv, parseHostname, parseLogPolicy, parseRunRequest, parseUser, parseWorkdir } from '../../../src/cli/parse.js';
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

test('log rotation options: --log-max-size/--log-max-files or --log-opt, the default otherwise', () => {
  const d = { maxBytes: 10 << 20, maxFiles: 2 };
  assert.equal(parseLogPolicy({}, d), undefined);
  assert.deepEqual(parseLogPolicy({ logMaxSize: '1m' }, d), { maxBytes: 1 << 20, maxFiles: 2 });
  assert.deepEqual(parseLogPolicy({ logMaxFiles: '5' }, d), { maxBytes: 10 << 20, maxFiles: 5 });
  assert.deepEqual(parseLogPolicy({ logOpt: ['max-size=64k', 'max-file=3'] }, d), { maxBytes: 64 << 10, maxFiles: 3 });
  assert.deepEqual(parseLogPolicy({ logMaxSize: '4k', logOpt: ['max-file=1'] }, d), { maxBytes: 4096, maxFiles: 1 });
  assert.deepEqual(parseRunRequest('a', ['x'], { image: 'i', logMaxSize: '20m' }).log, { maxBytes: 20 << 20, maxFiles: 2 });
  assert.equal(parseRunRequest('a', ['x'], { image: 'i' }).log, undefined);
});

const badLog: Array<[string, Parameters<typeof parseLogPolicy>[0], RegExp]> = [
  ['zero', { logMaxSize: '0' }, /^invalid --log-max-size "0"; give a size of at least 4k/],
  ['not a size', { logMaxSize: 'abc' }, /^invalid --log-max-size "abc"/],
  ['negative', { logMaxSize: '-5m' }, /^invalid --log-max-size "-5m"/],
  ['below the minimum', { logMaxSize: '100' }, /^--log-max-size "100" is below the minimum of 4 KiB/],
  ['zero files', { logMaxFiles: '0' }, /^invalid --log-max-files "0"; give a whole number of files from 1 to 100/],
  ['too many files', { logMaxFiles: '101' }, /^invalid --log-max-files "101"/],
  ['fractional files', { logMaxFiles: '1.5' }, /^invalid --log-max-files "1\.5"/],
  ['unknown --log-opt', { logOpt: ['compress=true'] }, /^invalid --log-opt "compress=true"; use --log-opt max-size=SIZE/],
  ['--log-opt without =', { logOpt: ['max-size'] }, /^invalid --log-opt "max-size"/],
  ['bad --log-opt size', { logOpt: ['max-size=0'] }, /^invalid --log-opt max-size "0"; .*--log-opt max-size=10m/],
  ['given twice', { logMaxSize: '1m', logOpt: ['max-size=2m'] }, /^--log-opt max-size repeats --log-max-size/],
];
for (const [what, o, want] of badLog) {
  test(`rejects a log option: ${what}`, () => {
    assert.equal(code(() => parseLogPolicy(o, { maxBytes: 1 << 20, maxFiles: 2 })), 'EINVAL_ARG');
    assert.throws(() => parseLogPolicy(o, { maxBytes: 1 << 20, maxFiles: 2 }), (e: unknown) => want.test((e as TsmError).oneLine()));
  });
}

test('run: -t makes a tty request, -i needs -t', () => {
  assert.equal(parseRunRequest('w', ['sh'], { image: 'b', tty: true, interactive: true }, '0-1').tty, true);
  assert.equal(parseRunRequest('w', ['sh'], { image: 'b' }, '0-1').tty, undefined);
  assert.throws(() => parseRunRequest('w', ['sh'], { image: 'b', interactive: true }, '0-1'), { code: 'EINVAL_ARG', message: /run -i without -t/ });
});
