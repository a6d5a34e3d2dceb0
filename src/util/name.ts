import { TsmError } from '../errors/errors.js';

/** What a name names: both share one rule, so names are safe as directory names. */
export type NameKind = 'image' | 'container';

/** 1-63 characters of [a-z0-9_.-], starting with a letter or digit ('.' and '..' can never match). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** Returns `name` when valid; throws TsmError('EINVAL_NAME') otherwise. */
export function validateName(kind: NameKind, name: string): string {
  if (typeof name === 'string' && isValidName(name)) return name;
  const shown = typeof name === 'string' ? quoteForMessage(name) : `"${String(name)}"`;
  throw new TsmError(
    'EINVAL_NAME',
    `invalid ${kind} name ${shown}: use 1-63 characters [a-z0-9_.-], starting with a letter or digit`,
    { fix: `choose a valid name, for example "${suggestName(kind, typeof name === 'string' ? name : '')}"` },
  );
}

/** A valid name derived from `name` (for the `fix` hint). */
export function suggestName(kind: NameKind, name: string): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 63)
    .replace(/[-_.]+$/, '');
  return s.length > 0 ? s : `my-${kind}`;
}

/** Quote user input for a one-line message: escapes control characters, truncates. */
function quoteForMessage(s: string): string {
  const cut = s.length > 80 ? `${s.slice(0, 80)}...` : s;
  return JSON.stringify(cut);
}
