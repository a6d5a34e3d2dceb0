/**
 * Pure: device rules -> the eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) that a
 * cgroup v2 dir runs on every open and mknod of a device node. The kernel
 * passes struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
 * with access_type = (access << 16) | type; the program returns 1 to allow
 * and 0 to deny (EPERM).
 *
 * Shape (an allow-list, first match wins):
 *   r2 = ctx->access_type; r3 = r2; w2 &= 0xffff (type); w3 >>= 16 (access)
 *   r4 = ctx->major; r5 = ctx->minor
 *   per rule: each test that fails jumps to the next rule, then r0 = 1; exit
 *     type     if r2 != TYPE goto next                ('a': no test)
 *     access   if r3 & (rwm bits NOT granted) goto next (rwm: no test)
 *     major    if r4 != MAJOR goto next                (any: no test)
 *     minor    if r5 != MINOR goto next                (any: no test)
 *   r0 = 0; exit
 * A rule with no test matches everything: the verifier refuses unreachable
 * instructions, so the program ends with it.
 */
import { endianness } from 'node:os';
import { TsmError } from '../errors/errors.js';
import { deviceRuleLine, type DeviceRule } from '../security/devices.js';

/** One struct bpf_insn. */
export interface BpfInsn {
  readonly code: number;
  readonly dst: number;
  readonly src: number;
  readonly off: number;
  readonly imm: number;
}

/** include/uapi/linux/bpf.h: enum bpf_devcg_type and the access bits. */
export const BPF_DEVCG_DEV_BLOCK = 1;
export const BPF_DEVCG_DEV_CHAR = 2;
export const BPF_DEVCG_ACC_MKNOD = 1;
export const BPF_DEVCG_ACC_READ = 2;
export const BPF_DEVCG_ACC_WRITE = 4;

/** Opcodes used (class | op | source). */
export const OP = Object.freeze({
  LDX_MEM_W: 0x61, // BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
  MOV64_X: 0xbf, // BPF_ALU64 | BPF_MOV | BPF_X: dst = src
  AND32_K: 0x54, // BPF_ALU | BPF_AND | BPF_K: wdst &= imm
  RSH32_K: 0x74, // BPF_ALU | BPF_RSH | BPF_K: wdst >>= imm
  MOV32_K: 0xb4, // BPF_ALU | BPF_MOV | BPF_K: wdst = imm
  JNE_K: 0x55, // BPF_JMP | BPF_JNE | BPF_K: if dst != imm goto pc + 1 + off
  JSET_K: 0x45, // BPF_JMP | BPF_JSET | BPF_K: if dst & imm goto pc + 1 + off
  EXIT: 0x95, // BPF_JMP | BPF_EXIT
});

/** The kernel's device numbers: 12-bit major, 20-bit minor. */
export const MAX_MAJOR = 0xfff;
export const MAX_MINOR = 0xfffff;
/** BPF_MAXINSNS; a program this long holds several hundred rules. */
export const MAX_INSNS = 4096;

const R0 = 0;
const R1 = 1;
const R2 = 2;
const R3 = 3;
const R4 = 4;
const R5 = 5;

const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({ code, dst, src, off, imm });

const ACCESS_BITS: Record<string, number> = { m: BPF_DEVCG_ACC_MKNOD, r: BPF_DEVCG_ACC_READ, w: BPF_DEVCG_ACC_WRITE };
const ALL_ACCESS = BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE;

function badRule(r: DeviceRule, why: string): TsmError {
  let shown: string;
  try {
    shown = deviceRuleLine(r);
  } catch {
    shown = JSON.stringify(r);
  }
  return new TsmError('EINVAL_ARG', `device rule ${JSON.stringify(shown)}: ${why}`, {
    fix: `use TYPE MAJOR:MINOR ACCESS with TYPE a, c or b, MAJOR 0-${MAX_MAJOR} or *, MINOR 0-${MAX_MINOR} or *, ACCESS letters from rwm`,
  });
}

function accessMask(r: DeviceRule): number {
  let mask = 0;
  for (const ch of r.access) {
    const bit = ACCESS_BITS[ch];
    if (bit === undefined || mask & bit) throw badRule(r, 'the access must be a non-empty subset of "rwm"');
    mask |= bit;
  }
  if (mask === 0) throw badRule(r, 'the access must be a non-empty subset of "rwm"');
  return mask;
}

function checkNumber(r: DeviceRule, n: number | null, max: number, what: string): void {
  if (n !== null && !(Number.isInteger(n) && n >= 0 && n <= max)) throw badRule(r, `the ${what} must be 0-${max} or any`);
}

/** The tests of one rule, each jumping to the next rule when it fails (offsets filled in by the caller). */
function ruleTests(r: DeviceRule): Array<Omit<BpfInsn, 'off'>> {
  if (r.type !== 'a' && r.type !== 'c' && r.type !== 'b') throw badRule(r, 'the type must be a, c or b');
  checkNumber(r, r.major, MAX_MAJOR, 'major');
  checkNumber(r, r.minor, MAX_MINOR, 'minor');
  const notGranted = ALL_ACCESS & ~accessMask(r);
  const tests: Array<Omit<BpfInsn, 'off'>> = [];
  if (r.type !== 'a') tests.push({ code: OP.JNE_K, dst: R2, src: 0, imm: r.type === 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK });
  if (notGranted !== 0) tests.push({ code: OP.JSET_K, dst: R3, src: 0, imm: notGranted });
  if (r.major !== null) tests.push({ code: OP.JNE_K, dst: R4, src: 0, imm: r.major });
  if (r.minor !== null) tests.push({ code: OP.JNE_K, dst: R5, src: 0, imm: r.minor });
  return tests;
}

/** The program allowing exactly `rules` (an empty list denies every device). Throws EINVAL_ARG on a bad rule. */
export function deviceProgram(rules: readonly DeviceRule[]): BpfInsn[] {
  const out: BpfInsn[] = [
    insn(OP.LDX_MEM_W, R2, R1, 0, 0), // access_type
    insn(OP.MOV64_X, R3, R2, 0, 0),
    insn(OP.AND32_K, R2, 0, 0, 0xffff), // type
    insn(OP.RSH32_K, R3, 0, 0, 16), // access
    insn(OP.LDX_MEM_W, R4, R1, 4, 0), // major
    insn(OP.LDX_MEM_W, R5, R1, 8, 0), // minor
  ];
  let matchesAll = false;
  for (const r of rules) {
    const tests = ruleTests(r);
    // a failing test skips the tests after it and the rule's two-instruction "allow"
    tests.forEach((t, i) => out.push({ ...t, off: tests.length - 1 - i + 2 }));
    out.push(insn(OP.MOV32_K, R0, 0, 0, 1), insn(OP.EXIT, 0, 0, 0, 0));
    if (tests.length === 0) {
      matchesAll = true;
      break;
    }
  }
  if (!matchesAll) out.push(insn(OP.MOV32_K, R0, 0, 0, 0), insn(OP.EXIT, 0, 0, 0, 0));
  if (out.length > MAX_INSNS) {
    throw new TsmError('EINVAL_ARG', `${rules.length} device rules make a program of ${out.length} instructions; the kernel takes at most ${MAX_INSNS}`, {
      fix: 'allow fewer devices, or whole majors (c MAJOR:* rwm) instead of single nodes',
    });
  }
  return out;
}

/**
 * The program as the kernel reads it: 8 bytes per instruction, in the host's
 * byte order: code, registers (dst in the low nibble on little-endian hosts,
 * the high one on big-endian), s16 offset, s32 immediate.
 */
export function encodeProgram(insns: readonly BpfInsn[], order: 'LE' | 'BE' = endianness()): Buffer {
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((x, i) => {
    const o = i * 8;
    buf.writeUInt8(x.code, o);
    buf.writeUInt8(order === 'LE' ? (x.src << 4) | x.dst : (x.dst << 4) | x.src, o + 1);
    if (order === 'LE') {
      buf.writeInt16LE(x.off, o + 2);
      buf.writeInt32LE(x.imm, o + 4);
    } else {
      buf.writeInt16BE(x.off, o + 2);
      buf.writeInt32BE(x.imm, o + 4);
    }
  });
  return buf;
}
