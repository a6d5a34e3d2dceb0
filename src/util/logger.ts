/** Library code logs through an injected Logger; only src/cli decides where it goes. */
export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export function stderrLogger(verbose: boolean): Logger {
  return {
    debug: (m) => { if (verbose) process.stderr.write(`debug: ${m}\n`); },
    info: (m) => { if (verbose) process.stderr.write(`${m}\n`); },
    warn: (m) => process.stderr.write(`warning: ${m}\n`),
  };
}
