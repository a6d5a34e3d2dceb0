import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTsmError } from '../../../src/errors/errors.js';
import { beginStatementText, checkBegin, checkSums, sumsStatementText } from '../../../src/move/statement.js';
import { beginReq } from '../agent/helpers.js';

const C = 'a'.repeat(64);
const D = `sha256:${'1'.repeat(64)}`;

test('begin: the signed statement must say exactly what the request asks, for this connection', () => {
  const text = beginStatementText(C, beginReq);
  checkBegin(text, C, beginReq);
  // the lease owner, memory and deadline are the peer's own business: not part of the statement
  const withoutLease = { ...beginReq, leaseOwner: null };
  checkBegin(text, C, withoutLease);
  const cases: Array<[string, string, string, typeof beginReq, RegExp]> = [
    ['another connection (a replayed statement)', text, 'b'.repeat(64), beginReq, /another connection/],
    ['another container', text, C, { ...beginReq, name: 'web-2' }, /name differs/],
    ['another config', text, C, { ...beginReq, config: { ...beginReq.config, command: ['sh', '-c', 'evil'] } }, /config differs/],
    ['other CRIU options', text, C, { ...beginReq, criuOptions: { tcpEstablished: false, fileLocks: true } }, /criuOptions differs/],
    ['another epoch', text, C, { ...beginReq, epoch: 9 }, /epoch differs/],
    ['a sums statement', sumsStatementText(C, beginReq.migrationId, { images: D, upper: [] }), C, beginReq, /does not match the request \(statement\./],
    ['not JSON', 'nope', C, beginReq, /does not match/],
    ['an extra field', JSON.stringify({ ...JSON.parse(text), run: 'x' }), C, beginReq, /unexpected field/],
  ];
  for (const [what, t, c, req, want] of cases) {
    assert.throws(() => checkBegin(t, c, req), (e) => isTsmError(e, 'EUNTRUSTED') && want.test(e.message), what);
  }
});

test('sums: what arrived must be what was signed', () => {
  const id = beginReq.migrationId;
  const text = sumsStatementText(C, id, { images: D, upper: [D] });
  checkSums(text, C, id, { images: D, upper: [D] });
  assert.throws(() => checkSums(text, C, id, { images: `crc32:00000000`, upper: [D] }), (e) => isTsmError(e, 'EINTEGRITY'));
  assert.throws(() => checkSums(text, C, id, { images: D, upper: [] }), (e) => isTsmError(e, 'EINTEGRITY'));
  assert.throws(() => checkSums(text, C, id, { images: undefined, upper: [D] }), (e) => isTsmError(e, 'EINTEGRITY'));
  assert.throws(() => checkSums(text, 'b'.repeat(64), id, { images: D, upper: [D] }), (e) => isTsmError(e, 'EUNTRUSTED'));
  assert.throws(() => checkSums(text, C, 'm-other-0000', { images: D, upper: [D] }), (e) => isTsmError(e, 'EUNTRUSTED'));
});
