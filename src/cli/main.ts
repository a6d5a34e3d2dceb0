#!/usr/bin/env -S node --initial-old-space-size=256
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { exitCodeFor, TsmError } from '../errors/errors.js';
import { registerContainerCommands } from './commands/containers.js';
import { registerImageCommands } from './commands/images.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerCheckpointCommands } from './commands/checkpoints.js';
import { registerMoveCommands } from './commands/move.js';
import { registerHostCommands } from './commands/hosts.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerStoreCommands } from './commands/stores.js';
import { registerScheduleCommands } from './commands/schedules.js';
import { tuneMallocForStreaming } from '../native/native.js';
import type { SourceFaults } from '../move/local-source.js';
import { escapeLine } from './output.js';
import { guardStdio, writeErr } from './stdio.js';

/** Test seams a test's own entry point (test/helpers/fault-cli.ts) sets; production passes none. */
export interface CliSeams {
  moveFaults?: SourceFaults;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The only place that prints errors and decides exit codes. */
export async function main(argv: string[], seams: CliSeams = {}): Promise<number> {
  let exitCode = 0;
  // a umask of 000 must not leave anything tsmigrate creates writable by others (a stricter one is kept)
  process.umask(process.umask(0o022) | 0o022);
  // a reader gone from stdout or stderr must not kill a command half-way (a move between its phases)
  guardStdio();
  // moves, checkpoints and the agent stream bulk data through short-lived Buffers (see native.ts)
  tuneMallocForStreaming();
  const program = new Command('tsmigrate')
    .description('run, checkpoint and live-migrate Linux containers')
    .version(version(), '-V, --version')
    .option('--root <dir>', 'state root (default $TSMIGRATE_ROOT or /var/lib/tsmigrate)')
    .option('--config <file>', 'hosts config (default $TSMIGRATE_CONFIG or /etc/tsmigrate/config.yaml)')
    .option('--trust-signer <fingerprint>', 'accept, for this command only, a checkpoint signed by this key (SHA256:...) that the config does not trust, or "unsigned" (loud)')
    .option('--criu-deadline <spec>', 'how long CRIU may run: BASE[+PER/GiB][,stall=S|off] seconds (default 60+20/GiB,stall=30, or $TSMIGRATE_CRIU_DEADLINE)')
    .option('--json', 'machine-readable output')
    .option('-v, --verbose', 'say what is happening')
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  const setExit = (c: number) => (exitCode = c);
  registerContainerCommands(program, setExit);
  registerImageCommands(program);
  registerDoctorCommand(program, setExit);
  registerCheckpointCommands(program);
  registerHostCommands(program);
  registerKeyCommands(program);
  registerMoveCommands(program, setExit, seams);
  registerStoreCommands(program);
  registerScheduleCommands(program);
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      writeErr(`tsmigrate: error: ${escapeLine(e.message.replace(/^error: /, ''))}; see tsmigrate --help\n`);
      return 2;
    }
    if (e instanceof TsmError) {
      writeErr(`tsmigrate: error: ${escapeLine(e.oneLine())}\n`);
      if (process.env['TSMIGRATE_DEBUG'] && e.cause) writeErr(`${String((e.cause as Error).stack ?? e.cause)}\n`);
      return exitCodeFor(e);
    }
    writeErr(`tsmigrate: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return exitCodeFor(e);
  }
}

/** how long a finished command may take to let go of what it opened */
const EXIT_GRACE_MS = 3000;

// the entry point (also through npm's bin symlink); imported by a test's entry, it only exports
const entry = process.argv[1] ? realpathSync(process.argv[1]) : '';
if (entry === fileURLToPath(import.meta.url)) {
  main(process.argv).then((code) => {
    process.exitCode = code;
    // The command is done. Whatever still holds the event loop (a connection a
    // peer opened too late, a child's pipe) must not hold this process, and so
    // a container's freeze watchdog waiting for it to end: exit after a grace.
    setTimeout(() => {
      if (process.env['TSMIGRATE_DEBUG']) writeErr(`tsmigrate: exiting with open handles: ${process.getActiveResourcesInfo().join(', ')}\n`);
      process.exit(code);
    }, EXIT_GRACE_MS).unref();
  });
}
