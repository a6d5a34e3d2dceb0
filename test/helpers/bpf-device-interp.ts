/**
 * Runs an encoded (little-endian) cgroup device program on one access, the
 * way the kernel would, for the opcodes the builder emits; anything else, a
 * jump out of the program or a path that never exits throws. Also reports
 * which instructions were reached, so tests can check the verifier's rule
 * that none is unreachable.
 */
export interface DevAccess {
  type: 'c' | 'b';
  major: number;
  minor: number;
  /** letters from rwm */
  access: string;
}

const TYPE = { b: 1, c: 2 } as const;
const ACC: Record<string, number> = { m: 1, r: 2, w: 4 };

export function runDeviceProgram(prog: Buffer, a: DevAccess, reached?: Set<number>): number {
  const n = prog.length / 8;
  const reg = new Array<bigint>(11).fill(0n);
  const ctx = Buffer.alloc(12);
  const acc = [...a.access].reduce((m, ch) => m | ACC[ch]!, 0);
  ctx.writeUInt32LE((acc << 16) | TYPE[a.type], 0);
  ctx.writeUInt32LE(a.major, 4);
  ctx.writeUInt32LE(a.minor, 8);
  const u32 = (x: bigint) => x & 0xffffffffn;
  for (let pc = 0, steps = 0; steps < 10000; steps++) {
    if (pc < 0 || pc >= n) throw new Error(`pc ${pc} out of the program`);
    reached?.add(pc);
    const o = pc * 8;
    const code = prog[o]!;
    const dst = prog[o + 1]! & 0xf;
    const src = prog[o + 1]! >> 4;
    const off = prog.readInt16LE(o + 2);
    const imm = BigInt(prog.readInt32LE(o + 4));
    pc++;
    switch (code) {
      case 0x61:
        if (src !== 1) throw new Error('loads only from the ctx (r1)');
        reg[dst] = BigInt(ctx.readUInt32LE(off));
        break;
      case 0xbf:
        reg[dst] = reg[src]!;
        break;
      case 0x54:
        reg[dst] = u32(reg[dst]!) & u32(imm);
        break;
      case 0x74:
        reg[dst] = u32(reg[dst]!) >> imm;
        break;
      case 0xb4:
        reg[dst] = u32(imm);
        break;
      case 0x55:
        if (reg[dst] !== BigInt.asUintN(64, imm)) pc += off;
        break;
      case 0x45:
        if ((reg[dst]! & BigInt.asUintN(64, imm)) !== 0n) pc += off;
        break;
      case 0x95:
        return Number(reg[0]);
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc - 1}`);
    }
  }
  throw new Error('the program does not exit');
}
