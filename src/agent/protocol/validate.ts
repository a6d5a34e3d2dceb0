/**
 * Tiny validator combinators (no dependencies). A Validator<T> takes an
 * untrusted value (from JSON.parse) and returns it typed, or throws
 * TsmError('EPROTO', 'bad message: <path>: <what>'). Objects are rebuilt
 * from known keys only, so prototype keys from the wire never leak through.
 */
import { TsmError } from '../../errors/errors.js';

export interface Validator<T> {
  (value: unknown, path?: string): T;
  /** set by optional(): the key may be absent from an object */
  readonly optional?: boolean;
  /** short description ("\"base\"", "a string"), used by oneOf() */
  readonly desc?: string;
}

export type Infer<V> = V extends Validator<infer T> ? T : never;

export type OptionalValidator<T> = Validator<T | undefined> & { readonly optional: true };

/**
 * Every key of T, each with a validator of that key's type; optional keys need
 * optional(), required keys must not have it (the compiler checks both ways).
 */
export type Shape<T> = {
  [K in keyof T]-?: {} extends Pick<T, K> ? OptionalValidator<Exclude<T[K], undefined>> : Validator<T[K]>;
};

const FIX = 'install the same tsmigrate version on both hosts';

export function fail(path: string, what: string): never {
  throw new TsmError('EPROTO', `bad message: ${path}: ${what}`, { fix: FIX });
}

/** A short, one-line, quoted preview of untrusted text for messages. */
export function preview(s: string, max = 40): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}...` : s);
}

function make<T>(fn: (v: unknown, path: string) => T, extra: { optional?: boolean; desc?: string } = {}): Validator<T> {
  const v = (value: unknown, path = 'message'): T => fn(value, path);
  return Object.assign(v, extra) as Validator<T>;
}

/** A string without NUL characters, at most `max` (default 4096) UTF-16 units, optionally matching `pattern`. */
export function str(opts: { max?: number; min?: number; pattern?: RegExp } = {}): Validator<string> {
  const max = opts.max ?? 4096;
  return make((v, path) => {
    if (typeof v !== 'string') return fail(path, `expected a string, got ${typeName(v)}`);
    if (v.length > max) return fail(path, `string longer than ${max} characters`);
    if (opts.min !== undefined && v.length < opts.min) return fail(path, `string shorter than ${opts.min} characters`);
    if (v.includes('\0')) return fail(path, 'string contains a NUL character');
    if (opts.pattern && !opts.pattern.test(v)) return fail(path, `${preview(v)} does not match ${opts.pattern.source}`);
    return v;
  }, { desc: 'a string' });
}

/** A finite number; `int` means a safe integer. */
export function num(opts: { int?: boolean; min?: number; max?: number } = {}): Validator<number> {
  return make((v, path) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return fail(path, `expected a number, got ${typeName(v)}`);
    if (opts.int && !Number.isSafeInteger(v)) return fail(path, `expected an integer, got ${v}`);
    if (opts.min !== undefined && v < opts.min) return fail(path, `${v} is below the minimum ${opts.min}`);
    if (opts.max !== undefined && v > opts.max) return fail(path, `${v} is above the maximum ${opts.max}`);
    return v;
  }, { desc: 'a number' });
}

export function bool(): Validator<boolean> {
  return make((v, path) => (typeof v === 'boolean' ? v : fail(path, `expected a boolean, got ${typeName(v)}`)), { desc: 'a boolean' });
}

export function lit<const T extends string | number | boolean | null>(value: T): Validator<T> {
  const desc = JSON.stringify(value);
  return make((v, path) => (v === value ? value : fail(path, `expected ${desc}`)), { desc });
}

/** Anything (a JSON value); for envelopes whose content is validated later. */
export function any(): Validator<unknown> {
  return make((v) => v, { desc: 'anything' });
}

export function nullable<T>(inner: Validator<T>): Validator<T | null> {
  return make((v, path) => (v === null ? null : inner(v, path)), { desc: `${inner.desc ?? 'a value'} or null` });
}

/** The key may be absent (or undefined); only meaningful inside obj(). */
export function optional<T>(inner: Validator<T>): OptionalValidator<T> {
  const v = make((x, path) => (x === undefined ? undefined : inner(x, path)), { optional: true, desc: inner.desc ?? 'a value' });
  return v as OptionalValidator<T>;
}

export function arr<T>(item: Validator<T>, opts: { max?: number } = {}): Validator<T[]> {
  const max = opts.max ?? 1024;
  return make((v, path) => {
    if (!Array.isArray(v)) return fail(path, `expected an array, got ${typeName(v)}`);
    if (v.length > max) return fail(path, `array of ${v.length} items, more than the maximum ${max}`);
    return v.map((x, i) => item(x, `${path}[${i}]`));
  }, { desc: 'an array' });
}

/**
 * An object with exactly the keys of `shape` (optional() ones may be absent).
 * Unknown keys are rejected (default) or dropped ('strip'). Call with an
 * explicit type argument to have the compiler check the shape against T.
 */
export function obj<T>(shape: Shape<T>, opts: { extra?: 'reject' | 'strip' } = {}): Validator<T> {
  const keys = Object.keys(shape) as Array<keyof T & string>;
  return make((v, path) => {
    if (!isPlainObject(v)) return fail(path, `expected an object, got ${typeName(v)}`);
    if (opts.extra !== 'strip') {
      for (const k of Object.keys(v)) if (!Object.hasOwn(shape, k)) fail(`${path}.${safeKey(k)}`, 'unexpected field');
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const fv = (shape as Record<string, Validator<unknown>>)[k]!;
      const present = Object.hasOwn(v, k);
      if (!present && !fv.optional) fail(`${path}.${k}`, 'missing');
      const val = fv(present ? v[k] : undefined, `${path}.${k}`);
      if (val !== undefined) out[k] = val;
    }
    return out as T;
  }, { desc: 'an object' });
}

/** The first alternative that accepts the value. */
export function oneOf<V extends Array<Validator<unknown>>>(...alts: V): Validator<Infer<V[number]>> {
  const desc = alts.map((a) => a.desc ?? 'a value').join(' or ');
  return make((v, path) => {
    let first: unknown;
    for (const a of alts) {
      try {
        return a(v, path) as Infer<V[number]>;
      } catch (e) {
        first ??= e;
      }
    }
    if (alts.every((a) => a.desc !== undefined && a.desc.startsWith('"'))) return fail(path, `expected one of ${alts.map((a) => a.desc).join(', ')}`);
    throw first instanceof TsmError ? first : fail(path, `expected ${desc}`);
  }, { desc });
}

/** An object used as a map: string keys (at most `maxKeys`, each at most 256 characters), values checked by `value`. */
export function record<T>(value: Validator<T>, opts: { maxKeys?: number } = {}): Validator<Record<string, T>> {
  const maxKeys = opts.maxKeys ?? 1024;
  return make((v, path) => {
    if (!isPlainObject(v)) return fail(path, `expected an object, got ${typeName(v)}`);
    const keys = Object.keys(v);
    if (keys.length > maxKeys) return fail(path, `object with ${keys.length} keys, more than the maximum ${maxKeys}`);
    const out: Record<string, T> = {};
    for (const k of keys) {
      if (k.length > 256 || k.includes('\0')) fail(`${path}.${safeKey(k)}`, 'key too long or contains NUL');
      Object.defineProperty(out, k, { value: value(v[k], `${path}.${safeKey(k)}`), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }, { desc: 'an object' });
}

/** `inner`, then a predicate; `what` says what the value must be ("an IPv4 address"). */
export function refine<T>(inner: Validator<T>, pred: (v: T) => boolean, what: string): Validator<T> {
  return make((v, path) => {
    const t = inner(v, path);
    return pred(t) ? t : fail(path, `${typeof t === 'string' ? preview(t) : String(t)} is not ${what}`);
  }, inner.optional ? { optional: true, desc: what } : { desc: what });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function safeKey(k: string): string {
  return /^[A-Za-z_$][\w$]{0,63}$/.test(k) ? k : `[${preview(k, 30)}]`;
}
