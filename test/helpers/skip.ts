/**
 * A test may skip on a developer's machine that lacks root or a package, but
 * never on CI (CI=true): there a missing prerequisite is a setup failure, so it
 * fails loudly instead.
 */
export function skipUnless(ok: boolean, reason: string): string | false {
  if (ok) return false;
  if (process.env['CI']) throw new Error(`${reason}: CI must provide this (scripts/setup.sh, run as root)`);
  return reason;
}

export const isRoot = process.getuid?.() === 0;
