/** Library code logs through an injected Logger; only src/cli decides where it goes. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

/** `write` is the CLI's guarded writer (src/cli/stdio.ts) where a closed stderr must not matter. */
export function stderrLogger(verbose: boolean, write: (s: string) => unknown = (s) => process.stderr.write(s)): Logger {
  return {
    debug: (m) => { if (verbose) write(`debug: ${m}\n`); },
    info: (m) => { if (verbose) write(`${m}\n`); },
    warn: (m) => write(`warning: ${m}\n`),
  };
}
