import type { Command } from 'commander';
import { criuDeadlineSetting } from '../criu/deadline.js';
import { createRuntime, type Runtime } from '../runtime/context.js';
import { resolveConfigPath } from '../hosts/config.js';
import { parseTrustOverride } from '../sign/signing.js';
import { resolveRoot } from '../state/paths.js';
import { ensureStateRoot } from '../state/root-dir.js';
import { stderrLogger } from '../util/logger.js';
import { jsonText } from './output.js';
import { writeErrLine, writeOut } from './stdio.js';

export interface GlobalOpts {
  root?: string;
  json?: boolean;
  verbose?: boolean;
  criuDeadline?: string;
  config?: string;
  trustSigner?: string;
}

/** Options are normalised once here, at the entry point. */
export function runtimeFor(cmd: Command): { rt: Runtime; json: boolean } {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  ensureStateRoot(resolveRoot(g.root));
  const rt = createRuntime({
    root: resolveRoot(g.root),
    logger: stderrLogger(Boolean(g.verbose), writeErrLine),
    criuDeadline: criuDeadlineSetting(g.criuDeadline, process.env),
    configFile: resolveConfigPath(g.config),
    trustOverride: parseTrustOverride(g.trustSigner),
  });
  return { rt, json: Boolean(g.json) };
}

export function print(s: string): void {
  writeOut(s.endsWith('\n') ? s : `${s}\n`);
}

export function printJson(v: unknown): void {
  writeOut(jsonText(v, 2) + '\n');
}
