import { TsmError } from '../errors/errors.js';

/**
 * POSIX shell quoting for remote commands. sshd hands the command string to the
 * remote user's shell (`sh -c`), so every argument is single-quoted: inside
 * single quotes nothing is special except `'` itself, written as `'\''`.
 * NUL cannot be carried by a C string at all, so it is refused.
 */
export function shQuote(arg: string): string {
  if (typeof arg !== 'string') {
    throw new TsmError('EINVAL_ARG', `cannot quote a remote command argument of type ${typeof arg}`, { fix: 'pass strings only' });
  }
  if (arg.includes('\0')) {
    throw new TsmError('EINVAL_ARG', `remote command argument ${JSON.stringify(arg.slice(0, 40))} contains a NUL byte`, {
      fix: 'remove the NUL byte; arguments cannot carry it',
    });
  }
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The command string for argv: every argument quoted, joined with spaces. */
export function shCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new TsmError('EINVAL_ARG', 'empty remote command', { fix: 'give at least the program to run' });
  return argv.map(shQuote).join(' ');
}
