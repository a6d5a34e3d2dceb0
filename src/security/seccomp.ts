/**
 * Seccomp profiles: Docker's JSON format (the subset that matters: default
 * action, syscall groups with an action, argument comparisons, and groups
 * that apply only with or without given capabilities), read and checked here,
 * then compiled for one container's capabilities into rules that tsm-shim
 * loads with libseccomp just before the container's command runs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../errors/errors.js';
import { CAPABILITY_NAMES, type CapabilityName } from './capabilities.js';

export type SeccompAction = 'allow' | 'errno' | 'kill' | 'trap' | 'log';
export type SeccompOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked_eq';

export interface SeccompArg {
  readonly index: number;
  readonly op: SeccompOp;
  /** unsigned 64-bit, in decimal */
  readonly value: string;
  readonly valueTwo: string;
}

export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: SeccompAction;
  readonly errno: number;
  readonly args: readonly SeccompArg[];
}

/** A profile compiled for one set of capabilities: what the shim loads. */
export interface CompiledSeccomp {
  readonly defaultAction: SeccompAction;
  readonly defaultErrno: number;
  readonly rules: readonly SeccompRule[];
}

const ACTIONS: Record<string, SeccompAction> = {
  SCMP_ACT_ALLOW: 'allow', SCMP_ACT_ERRNO: 'errno', SCMP_ACT_KILL: 'kill', SCMP_ACT_KILL_THREAD: 'kill',
  SCMP_ACT_KILL_PROCESS: 'kill', SCMP_ACT_TRAP: 'trap', SCMP_ACT_LOG: 'log',
};
const OPS: Record<string, SeccompOp> = {
  SCMP_CMP_EQ: 'eq', SCMP_CMP_NE: 'ne', SCMP_CMP_LT: 'lt', SCMP_CMP_LE: 'le', SCMP_CMP_GT: 'gt', SCMP_CMP_GE: 'ge',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};
const SYSCALL_NAME = /^[a-z_][a-z0-9_]{0,63}$/;
const MAX_U64 = (1n << 64n) - 1n;

class ProfileError extends TsmError {
  constructor(where: string, what: string) {
    super('EINVAL_ARG', `seccomp profile ${where}: ${what}`, { fix: 'give a JSON profile in Docker\'s format (defaultAction, syscalls[].names/action/args), or seccomp=unconfined' });
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errnoOf(v: unknown, where: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 4095) throw new ProfileError(where, 'errnoRet must be an integer 1..4095');
  return v;
}

function u64(v: unknown, where: string): string {
  if (v === undefined) return '0';
  const n = typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : typeof v === 'string' && /^\d{1,20}$/.test(v) ? BigInt(v) : -1n;
  if (n < 0n || n > MAX_U64) throw new ProfileError(where, `${JSON.stringify(v)} is not an unsigned 64-bit number`);
  return n.toString();
}

function capsOf(v: unknown, where: string): CapabilityName[] {
  if (v === undefined) return [];
  if (!isObj(v)) throw new ProfileError(where, 'must be an object');
  const caps = v['caps'];
  if (caps === undefined) return [];
  if (!Array.isArray(caps) || caps.some((c) => typeof c !== 'string')) throw new ProfileError(`${where}.caps`, 'must be an array of capability names');
  return caps.map((c: string) => {
    const n = c.toUpperCase().replace(/^CAP_/, '');
    if (!(CAPABILITY_NAMES as readonly string[]).includes(n)) throw new ProfileError(`${where}.caps`, `unknown capability ${JSON.stringify(c)}`);
    return n as CapabilityName;
  });
}

/** Pure: a parsed profile compiled for `caps`; throws one clear error for anything it does not understand. */
export function compileSeccomp(profile: unknown, caps: readonly CapabilityName[]): CompiledSeccomp {
  if (!isObj(profile)) throw new ProfileError('', 'is not a JSON object');
  const defaultAction = ACTIONS[String(profile['defaultAction'])];
  if (!defaultAction) throw new ProfileError('defaultAction', `${JSON.stringify(profile['defaultAction'])} is not one of ${Object.keys(ACTIONS).join(', ')}`);
  const defaultErrno = errnoOf(profile['defaultErrnoRet'], 'defaultErrnoRet', 1);
  const groups = profile['syscalls'] ?? [];
  if (!Array.isArray(groups) || groups.length > 4096) throw new ProfileError('syscalls', 'must be an array (at most 4096 groups)');
  const have = new Set(caps);
  const rules: SeccompRule[] = [];
  for (const [i, g] of groups.entries()) {
    const where = `syscalls[${i}]`;
    if (!isObj(g)) throw new ProfileError(where, 'must be an object');
    const rawNames = g['names'] ?? (g['name'] !== undefined ? [g['name']] : undefined);
    if (!Array.isArray(rawNames) || rawNames.length === 0 || rawNames.length > 1024) throw new ProfileError(`${where}.names`, 'must be a non-empty array of syscall names');
    for (const n of rawNames) if (typeof n !== 'string' || !SYSCALL_NAME.test(n)) throw new ProfileError(`${where}.names`, `${JSON.stringify(n)} is not a syscall name`);
    const action = ACTIONS[String(g['action'])];
    if (!action) throw new ProfileError(`${where}.action`, `${JSON.stringify(g['action'])} is not one of ${Object.keys(ACTIONS).join(', ')}`);
    const errno = errnoOf(g['errnoRet'], `${where}.errnoRet`, defaultErrno);
    const rawArgs = g['args'] ?? [];
    if (!Array.isArray(rawArgs) || rawArgs.length > 6) throw new ProfileError(`${where}.args`, 'must be an array of at most 6 comparisons');
    const args = rawArgs.map((a: unknown, j: number): SeccompArg => {
      const aw = `${where}.args[${j}]`;
      if (!isObj(a)) throw new ProfileError(aw, 'must be an object');
      const index = a['index'];
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) throw new ProfileError(`${aw}.index`, 'must be 0..5');
      const op = OPS[String(a['op'])];
      if (!op) throw new ProfileError(`${aw}.op`, `${JSON.stringify(a['op'])} is not one of ${Object.keys(OPS).join(', ')}`);
      return { index, op, value: u64(a['value'], `${aw}.value`), valueTwo: u64(a['valueTwo'], `${aw}.valueTwo`) };
    });
    const includes = capsOf(g['includes'], `${where}.includes`);
    const excludes = capsOf(g['excludes'], `${where}.excludes`);
    if (!includes.every((c) => have.has(c)) || excludes.some((c) => have.has(c))) continue;
    rules.push({ names: rawNames as string[], action, errno, args });
  }
  return { defaultAction, defaultErrno, rules };
}

/** Pure: the text tsm-shim reads (native/shim/seccomp.c): one line per syscall and rule. */
export function seccompRulesText(c: CompiledSeccomp): string {
  const lines = [`default ${c.defaultAction} ${c.defaultErrno}`];
  for (const r of c.rules) {
    const args = r.args.map((a) => ` ${a.index} ${a.op} ${a.value} ${a.valueTwo}`).join('');
    for (const n of r.names) lines.push(`rule ${r.action} ${r.errno} ${n}${args}`);
  }
  return `${lines.join('\n')}\n`;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_SECCOMP_PROFILE = path.resolve(here, '../../../profiles/seccomp-default.json');

/** Read and parse a profile file; a file that is missing or not JSON is one clear error. */
export function readSeccompProfile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TsmError('EINVAL_ARG', `cannot read seccomp profile ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { fix: 'give the path of a readable JSON profile, or seccomp=unconfined' });
  }
  if (text.length > 1 << 20) throw new TsmError('EINVAL_ARG', `seccomp profile ${file} is larger than 1 MiB`, { fix: 'give a smaller profile' });
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TsmError('EINVAL_ARG', `seccomp profile ${file} is not valid JSON: ${(e as Error).message}`, { fix: 'fix the JSON, or use seccomp=unconfined' });
  }
}
