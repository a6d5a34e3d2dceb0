import { test } from 'node:test';
import assert from 'node:assert/strict';
import { STREAM_METHODS } from '../../../src/agent/api.js';
import {
  MAX_DELETED, agentSpec, arr, bool, containerConfig, helloResult as helloResultV, lit, methodSpec, networkPlan, nullable, num, obj, oneOf,
  optional, record, str,
} from '../../../src/agent/schema.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { MID, SHA, beginReq, config, fakeSigned, helloResult, network, preflightReq } from './helpers.js';

const bad = (re: RegExp) => (e: unknown) => isTsmError(e, 'EPROTO') && re.test(e.message) && !e.message.includes('\n') && e.fix !== undefined;

test('combinators: typed values through, clear one-line errors out', () => {
  assert.equal(str({ max: 3 })('abc'), 'abc');
  assert.throws(() => str({ max: 3 })('abcd', 'm.x'), bad(/^bad message: m\.x: string longer than 3/));
  assert.throws(() => str()(1, 'm'), bad(/^bad message: m: expected a string, got number$/));
  assert.throws(() => str()('a\0b', 'm'), bad(/NUL/));
  assert.throws(() => str({ pattern: /^a+$/ })('ab\nc', 'm'), bad(/"ab\\nc" does not match/));
  assert.equal(num({ int: true, min: 0 })(5), 5);
  assert.throws(() => num({ int: true })(1.5, 'n'), bad(/expected an integer/));
  assert.throws(() => num({ min: 2 })(1, 'n'), bad(/below the minimum 2/));
  assert.throws(() => num()('1', 'n'), bad(/expected a number, got string/));
  assert.equal(bool()(false), false);
  assert.throws(() => lit(true)(false, 'ok'), bad(/^bad message: ok: expected true$/));
  assert.equal(nullable(str())(null), null);
  assert.deepEqual(arr(num(), { max: 2 })([1, 2]), [1, 2]);
  assert.throws(() => arr(num(), { max: 2 })([1, 2, 3], 'a'), bad(/3 items, more than the maximum 2/));
  assert.throws(() => arr(num())([1, 'x'], 'a'), bad(/^bad message: a\[1\]: expected a number/));
  assert.throws(() => oneOf(lit('base'), lit('delta'))('x', 'phase'), bad(/^bad message: phase: expected one of "base", "delta"$/));
  assert.deepEqual(record(num())({ a: 1, b: 2 }), { a: 1, b: 2 });
});

test('obj: missing, extra and prototype keys', () => {
  const v = obj<{ a: number; b?: string }>({ a: num(), b: optional(str()) });
  assert.deepEqual(v({ a: 1 }), { a: 1 });
  assert.deepEqual(v({ a: 1, b: 'x' }), { a: 1, b: 'x' });
  assert.throws(() => v({ b: 'x' }, 'p'), bad(/^bad message: p\.a: missing$/));
  assert.throws(() => v({ a: 1, c: 2 }, 'p'), bad(/^bad message: p\.c: unexpected field$/));
  assert.throws(() => v(JSON.parse('{"a":1,"__proto__":{"x":1}}'), 'p'), bad(/unexpected field/));
  assert.throws(() => v([], 'p'), bad(/expected an object, got an array/));
  const strip = obj<{ a: number }>({ a: num() }, { extra: 'strip' });
  assert.deepEqual(strip({ a: 1, c: 2 }), { a: 1 });
  const r = record(num())(JSON.parse('{"__proto__":1}'));
  assert.equal(Object.getPrototypeOf(r), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(r, '__proto__')?.value, 1);
});

test('agentSpec covers AgentApi; stream flags match STREAM_METHODS; no prototype methods', () => {
  const streams = Object.entries(agentSpec).filter(([, s]) => s.stream).map(([k]) => k).sort();
  assert.deepEqual(streams, [...STREAM_METHODS].sort());
  assert.equal(methodSpec('toString'), undefined);
  assert.equal(methodSpec('__proto__'), undefined);
  assert.equal(methodSpec('constructor'), undefined);
  assert.ok(methodSpec('prepare'));
});

test('valid requests pass unchanged', () => {
  assert.deepEqual(agentSpec.preflight.params(preflightReq), preflightReq);
  assert.deepEqual(agentSpec.begin.params(beginReq), beginReq);
  assert.deepEqual(containerConfig(config), config);
  assert.deepEqual(networkPlan(network), network);
  assert.deepEqual(networkPlan({ mode: 'none', owner: network.owner }), { mode: 'none', owner: network.owner });
  assert.deepEqual(agentSpec.prepare.params({ migrationId: MID, expect: { images: `sha256:${SHA}`, upper: [`sha256:${SHA}`, `crc32:${SHA.slice(0, 8)}`] }, signed: fakeSigned }).expect.upper.length, 2);
  assert.deepEqual(helloResultV({ ...helloResult, extra: 'newer peer' }), helloResult);
});

test('bad requests: names, ids, paths, addresses', () => {
  const up = { migrationId: MID, phase: 'delta', deleted: ['etc/passwd', 'a/b c'], compression: 'zstd' };
  assert.deepEqual(agentSpec.putUpper.params(up, 'putUpper.params'), up);
  const P = 'putUpper.params';
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: ['a/../../etc'] }, P), bad(/deleted\[0\]: "a\/..\/..\/etc" is not a relative path/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: ['..'] }, P), bad(/deleted\[0\]/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: ['/etc/passwd'] }, P), bad(/deleted\[0\]/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: ['a\0b'] }, P), bad(/NUL/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: [''] }, P), bad(/deleted\[0\]/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, checksum: 'md5' }, P), bad(/checksum/));
  assert.deepEqual(agentSpec.putUpper.params({ ...up, checksum: 'crc32' }, P), { ...up, checksum: 'crc32' });
  // stream digests name their algorithm: a bare hex string, or a CRC of the wrong length, is refused
  assert.throws(() => agentSpec.prepare.params({ migrationId: MID, expect: { images: SHA, upper: [] } }, 'prepare.params'), bad(/expect\.images/));
  assert.throws(() => agentSpec.prepare.params({ migrationId: MID, expect: { images: 'crc32:abc', upper: [] } }, 'prepare.params'), bad(/expect\.images/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, deleted: new Array(MAX_DELETED + 1).fill('a') }, P), bad(/more than the maximum 100000/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, phase: 'full' }, P), bad(/phase: expected one of "base", "delta"/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, migrationId: 'short' }, P), bad(/migrationId/));
  assert.throws(() => agentSpec.putUpper.params({ ...up, migrationId: 'UPPER-CASE-ID' }, P), bad(/migrationId/));
  assert.throws(() => agentSpec.putImage.params({ name: 'A/..', digest: `sha256:${SHA}` }, 'putImage.params'), bad(/^bad message: putImage\.params\.name: "A\/\.\." does not match/));
  assert.throws(() => agentSpec.putImage.params({ name: 'alpine', digest: SHA }, 'putImage.params'), bad(/digest/));
  assert.throws(() => containerConfig({ ...config, name: '.hidden' }, 'c'), bad(/c\.name/));
  assert.throws(() => containerConfig({ ...config, net: { mode: 'bridge', ip: '10.88.0.256' } }, 'c'), bad(/c\.net\.ip: "10\.88\.0\.256" is not an IPv4 address/));
  assert.throws(() => containerConfig({ ...config, limits: { cpus: 0 } }, 'c'), bad(/c\.limits\.cpus/));
  assert.throws(() => containerConfig({ ...config, user: { uid: -1, gid: 0 } }, 'c'), bad(/c\.user\.uid/));
  assert.throws(() => networkPlan({ ...network, hostVeth: 'much-too-long-veth' }, 'n'), bad(/n\.hostVeth/));
  assert.throws(() => networkPlan({ ...network, subnet: '10.88.0.1/16' }, 'n'), bad(/n\.subnet/));
  assert.throws(() => networkPlan({ ...network, leaseDir: 'relative' }, 'n'), bad(/n\.leaseDir/));
  assert.throws(() => agentSpec.preflight.params({ ...preflightReq, cpuinfo: 'not base64!' }, 'p'), bad(/p\.cpuinfo/));
  assert.throws(() => agentSpec.abort.result({ ok: false }, 'abort.result'), bad(/abort\.result\.ok: expected true/));
});

test('the compiler checks shapes against their interfaces (compile-time)', () => {
  interface A { readonly a: string; b?: number }
  const ok = obj<A>({ a: str(), b: optional(num()) });
  // @ts-expect-error an optional key needs optional()
  obj<A>({ a: str(), b: num() });
  // @ts-expect-error a required key must not be optional()
  obj<A>({ a: optional(str()), b: optional(num()) });
  // @ts-expect-error a key is missing
  obj<A>({ a: str() });
  // @ts-expect-error an unknown key
  obj<A>({ a: str(), b: optional(num()), c: str() });
  // @ts-expect-error the wrong type
  obj<A>({ a: num(), b: optional(num()) });
  assert.deepEqual(ok({ a: 'x' }), { a: 'x' });
  void bool;
});

test('putLogs names only log files and the OOM record; the log policy travels in the config', () => {
  const lg = { migrationId: MID, replace: false, parts: [{ file: 'container.log.1', offset: 0, bytes: 10 }, { file: 'oom.json', offset: 0, bytes: 5 }], compression: 'none' };
  const P = 'putLogs.params';
  assert.deepEqual(agentSpec.putLogs.params(lg, P), lg);
  for (const file of ['../config.json', 'container.log.0', 'container.log/x', 'state.json', 'container.log.1000']) {
    assert.throws(() => agentSpec.putLogs.params({ ...lg, parts: [{ file, offset: 0, bytes: 1 }] }, P), bad(/parts\[0\]\.file/), file);
  }
  assert.throws(() => agentSpec.putLogs.params({ ...lg, parts: [{ file: 'container.log', offset: -1, bytes: 1 }] }, P), bad(/parts\[0\]\.offset/));
  assert.throws(() => agentSpec.putLogs.params({ ...lg, parts: new Array(102).fill({ file: 'container.log', offset: 0, bytes: 1 }) }, P), bad(/parts/));
  const withLog = { ...config, log: { maxBytes: 1 << 20, maxFiles: 3 } };
  assert.deepEqual(containerConfig(withLog), withLog);
  assert.throws(() => containerConfig({ ...config, log: { maxBytes: 0, maxFiles: 3 } }, 'c'), bad(/c\.log\.maxBytes/));
  assert.throws(() => containerConfig({ ...config, log: { maxBytes: 1 << 20, maxFiles: 0 } }, 'c'), bad(/c\.log\.maxFiles/));
});
