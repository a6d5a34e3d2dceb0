import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceProgram, encodeProgram, MAX_INSNS } from '../../../src/cgroup/device-program.js';
import { deviceFilterError } from '../../../src/cgroup/device-filter.js';
import { ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES, type DeviceRule } from '../../../src/security/devices.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { runDeviceProgram, type DevAccess } from '../../helpers/bpf-device-interp.js';

const hex = (b: Buffer) => [...Array(b.length / 8).keys()].map((i) => b.subarray(i * 8, i * 8 + 8).toString('hex'));
const rule = (type: DeviceRule['type'], major: number | null, minor: number | null, access: string): DeviceRule => ({ type, major, minor, access });

// r2 = access_type; r3 = r2; w2 &= 0xffff; w3 >>= 16; r4 = major; r5 = minor
const PROLOGUE = ['6112000000000000', 'bf23000000000000', '54020000ffff0000', '7403000010000000', '6114040000000000', '6115080000000000'];
const ALLOW = ['b400000001000000', '9500000000000000'];
const DENY = ['b400000000000000', '9500000000000000'];

test('encoding: one char device with all access, byte for byte (little-endian)', () => {
  assert.deepEqual(hex(encodeProgram(deviceProgram([rule('c', 1, 3, 'rwm')]), 'LE')), [
    ...PROLOGUE,
    '5502040002000000', // 6: if r2 != 2 (char) goto 11
    '5504030001000000', // 7: if r4 != 1 goto 11
    '5505020003000000', // 8: if r5 != 3 goto 11
    ...ALLOW, // 9, 10
    ...DENY, // 11, 12
  ]);
});

test('encoding: partial access tests the bits not granted with JSET', () => {
  assert.deepEqual(hex(encodeProgram(deviceProgram([rule('c', 1, 11, 'r'), rule('b', null, null, 'm')]), 'LE')), [
    ...PROLOGUE,
    '5502050002000000', // 6: if r2 != char goto 12
    '4503040005000000', // 7: if r3 & (mknod|write) goto 12
    '5504030001000000', // 8: if r4 != 1 goto 12
    '550502000b000000', // 9: if r5 != 11 goto 12
    ...ALLOW, // 10, 11
    '5502030001000000', // 12: if r2 != block goto 16
    '4503020006000000', // 13: if r3 & (read|write) goto 16
    ...ALLOW, // 14, 15
    ...DENY, // 16, 17
  ]);
});

test('encoding: big-endian hosts get dst in the high nibble and big-endian fields', () => {
  const be = hex(encodeProgram(deviceProgram([rule('c', 1, 3, 'rwm')]), 'BE'));
  assert.equal(be[0], '6121000000000000');
  assert.equal(be[4], '6141000400000000');
  assert.equal(be[6], '5520000400000002');
});

test('no rules deny everything; a rule matching everything ends the program (no unreachable code)', () => {
  assert.deepEqual(hex(encodeProgram(deviceProgram([]), 'LE')), [...PROLOGUE, ...DENY]);
  assert.deepEqual(hex(encodeProgram(deviceProgram([...ALLOW_ALL_DEVICES, rule('c', 1, 3, 'r')]), 'LE')), [...PROLOGUE, ...ALLOW]);
  // 'a' with a major still tests the major, and both types
  assert.deepEqual(hex(encodeProgram(deviceProgram([rule('a', 4, null, 'rwm')]), 'LE')), [...PROLOGUE, '5504020004000000', ...ALLOW, ...DENY]);
});

const c = (major: number, minor: number, access: string): DevAccess => ({ type: 'c', major, minor, access });
const b = (major: number, minor: number, access: string): DevAccess => ({ type: 'b', major, minor, access });

const DECISIONS: Array<[string, readonly DeviceRule[], DevAccess, 0 | 1]> = [
  ['default: read /dev/null', DEFAULT_DEVICE_RULES, c(1, 3, 'r'), 1],
  ['default: read+write /dev/urandom', DEFAULT_DEVICE_RULES, c(1, 9, 'rw'), 1],
  ['default: a pts', DEFAULT_DEVICE_RULES, c(136, 7, 'rw'), 1],
  ['default: /dev/ptmx', DEFAULT_DEVICE_RULES, c(5, 2, 'rw'), 1],
  ['default: /dev/kmsg', DEFAULT_DEVICE_RULES, c(1, 11, 'r'), 0],
  ['default: /dev/console', DEFAULT_DEVICE_RULES, c(5, 1, 'w'), 0],
  ['default: block 1:3 is not char 1:3', DEFAULT_DEVICE_RULES, b(1, 3, 'r'), 0],
  ['default: read a disk', DEFAULT_DEVICE_RULES, b(8, 0, 'r'), 0],
  ['default: mknod any char', DEFAULT_DEVICE_RULES, c(10, 200, 'm'), 1],
  ['default: mknod any block', DEFAULT_DEVICE_RULES, b(8, 0, 'm'), 1],
  ['default: mknod and read /dev/fuse', DEFAULT_DEVICE_RULES, c(10, 229, 'rm'), 0],
  ['read-only rule: read', [rule('c', 1, 11, 'r')], c(1, 11, 'r'), 1],
  ['read-only rule: write', [rule('c', 1, 11, 'r')], c(1, 11, 'w'), 0],
  ['read-only rule: read+write', [rule('c', 1, 11, 'r')], c(1, 11, 'rw'), 0],
  ['read-only rule: mknod', [rule('c', 1, 11, 'r')], c(1, 11, 'm'), 0],
  ['rw rule: write', [rule('b', 7, 0, 'rw')], b(7, 0, 'w'), 1],
  ['rw rule: other minor', [rule('b', 7, 0, 'rw')], b(7, 1, 'w'), 0],
  ['any minor', [rule('c', 136, null, 'rwm')], c(136, 0xfffff, 'rwm'), 1],
  ['any major, fixed minor', [rule('c', null, 5, 'r')], c(99, 5, 'r'), 1],
  ['any major, fixed minor: other minor', [rule('c', null, 5, 'r')], c(99, 6, 'r'), 0],
  ["'a' covers both types", [rule('a', 1, null, 'r')], b(1, 5, 'r'), 1],
  ["'a' with a major", [rule('a', 1, null, 'r')], c(2, 5, 'r'), 0],
  ['allow all', ALLOW_ALL_DEVICES, b(259, 1, 'rwm'), 1],
  ['no rules', [], c(1, 3, 'r'), 0],
  ['largest numbers', [rule('c', 0xfff, 0xfffff, 'w')], c(0xfff, 0xfffff, 'w'), 1],
];

for (const [name, rules, access, want] of DECISIONS) {
  test(`decision: ${name}`, () => {
    const reached = new Set<number>();
    const prog = encodeProgram(deviceProgram(rules), 'LE');
    assert.equal(runDeviceProgram(prog, access, reached), want);
  });
}

test('every instruction of the default program is reachable (the verifier refuses dead code)', () => {
  const prog = encodeProgram(deviceProgram(DEFAULT_DEVICE_RULES), 'LE');
  const reached = new Set<number>();
  for (const type of ['c', 'b'] as const) {
    for (const [major, minor] of [[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 2], [136, 4], [1, 11], [7, 0]] as const) {
      for (const access of ['r', 'w', 'm', 'rwm']) runDeviceProgram(prog, { type, major, minor, access }, reached);
    }
  }
  assert.equal(reached.size, prog.length / 8);
});

test('bad rules are refused with EINVAL_ARG naming the rule', () => {
  const bad: DeviceRule[] = [
    rule('c', 1, 3, ''),
    rule('c', 1, 3, 'rx'),
    rule('c', 1, 3, 'rr'),
    rule('c', 4096, 0, 'r'),
    rule('c', 1, 0x100000, 'r'),
    rule('c', -1, 0, 'r'),
    rule('c', 1.5, 0, 'r'),
    { type: 'x' as 'c', major: 1, minor: 3, access: 'r' },
  ];
  for (const r of bad) {
    assert.throws(() => deviceProgram([...DEFAULT_DEVICE_RULES, r]), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && /device rule/.test(e.message) && Boolean(e.fix), JSON.stringify(r));
  }
});

test('a rule list too long for the kernel is refused', () => {
  const many = Array.from({ length: 700 }, (_, i) => rule('c', 1, i, 'r'));
  assert.throws(() => deviceProgram(many), (e: unknown) => isTsmError(e, 'EINVAL_ARG') && new RegExp(`at most ${MAX_INSNS}`).test(e.message));
  assert.ok(deviceProgram(many.slice(0, 600)).length <= MAX_INSNS);
});

const errno = (code: string, syscall: string, extra: object = {}) => Object.assign(new Error(`${code}: x, ${syscall}`), { code, errno: -1, syscall, ...extra });

const ERRORS: Array<[string, Error, string, RegExp]> = [
  ['no bpf syscall', errno('ENOSYS', 'bpf(BPF_PROG_QUERY)'), 'ECGROUP_MISSING', /no bpf\(\) syscall/],
  ['no cgroup device program type', errno('EINVAL', 'bpf(BPF_PROG_LOAD)'), 'ECGROUP_MISSING', /cannot load BPF cgroup device programs/],
  ['verifier rejects', errno('EINVAL', 'bpf(BPF_PROG_LOAD)', { verifierLog: '0: (61) r2 = *(u32 *)(r1 +0)\nunreachable insn 9\n' }), 'EINTERNAL', /verifier rejected .*unreachable insn 9/],
  ['no attach type', errno('EINVAL', 'bpf(BPF_PROG_ATTACH)'), 'ECGROUP_MISSING', /cannot attach BPF device programs/],
  ['a v1 dir', errno('EBADF', 'bpf(BPF_PROG_QUERY)'), 'ECGROUP_MISSING', /not a cgroup v2 directory/],
  ['refused', errno('EPERM', 'bpf(BPF_PROG_LOAD)'), 'ECGROUP_MISSING', /refuses BPF device filters/],
  ['dir missing', errno('ENOENT', 'open', { path: '/sys/fs/cgroup/x' }), 'ECGROUP', /cannot open the cgroup dir/],
  ['anything else', errno('ENOMEM', 'bpf(BPF_PROG_ATTACH)'), 'ECGROUP', /cannot attach the device filter/],
];

for (const [name, e, code, re] of ERRORS) {
  test(`error: ${name} -> ${code}`, () => {
    const t = deviceFilterError(e, '/sys/fs/cgroup/x');
    assert.equal(t.code, code);
    assert.match(t.message, re);
    assert.ok(t.fix, 'says how to fix it');
    assert.equal(t.cause, e);
  });
}
