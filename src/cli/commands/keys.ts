import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { TsmError } from '../../errors/errors.js';
import { loadHostsConfig, resolveConfigPath, trustKey, untrustKey } from '../../hosts/config.js';
import { initHostKey, keyFiles, loadHostKey, readHostKey } from '../../sign/host-key.js';
import { formatPublicKey, KEY_TYPE } from '../../sign/public-key.js';
import { resolveRoot } from '../../state/paths.js';
import { requireRoot } from '../../util/root.js';
import { table } from '../output.js';
import { print, printJson } from '../context.js';

interface KeyGlobals {
  root?: string;
  config?: string;
  json?: boolean;
}

function globals(cmd: Command): { root: string; configFile: string; json: boolean } {
  const g = cmd.optsWithGlobals<KeyGlobals>();
  return { root: resolveRoot(g.root), configFile: resolveConfigPath(g.config), json: Boolean(g.json) };
}

/** A public key line given as itself or as a file holding it. */
async function keyLine(arg: string): Promise<string> {
  if (arg.startsWith(`${KEY_TYPE} `)) return arg;
  const text = await fs.readFile(arg, 'utf8').catch(() => {
    throw new TsmError('EINVAL_ARG', `${JSON.stringify(arg.slice(0, 80))} is neither a public key line nor a readable file`, {
      fix: `give the line tsmigrate key show prints on that host, quoted, or a file holding it`,
    });
  });
  return text.split('\n').find((l) => l.trim() !== '') ?? '';
}

export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('this host\'s signing key, and the keys whose checkpoints it trusts (the config\'s trust: list)');
  key
    .command('init')
    .description('make this host\'s Ed25519 signing key (also made on the first checkpoint or move)')
    .option('--force', 'replace an existing key (peers must then trust the new one)')
    .action(async (o: { force?: boolean }, cmd: Command) => {
      const { root, json } = globals(cmd);
      requireRoot('make a signing key');
      const k = await initHostKey(root, { force: Boolean(o.force) });
      if (json) printJson({ key: formatPublicKey(k.publicKey), fingerprint: k.publicKey.fingerprint, file: keyFiles(root).private });
      else print(`${formatPublicKey(k.publicKey)}\n${k.publicKey.fingerprint}`);
    });
  key
    .command('show')
    .description('print this host\'s public key line (give it to peers: tsmigrate key trust) and its fingerprint')
    .action(async (_o: unknown, cmd: Command) => {
      const { root, json } = globals(cmd);
      const k = await loadHostKey(root);
      if (json) printJson({ key: formatPublicKey(k.publicKey), fingerprint: k.publicKey.fingerprint });
      else print(`${formatPublicKey(k.publicKey)}\n${k.publicKey.fingerprint}`);
    });
  key
    .command('trust')
    .description('trust checkpoints and moves signed by this key')
    .argument('<key>', 'a public key line (quoted) or a file holding one')
    .action(async (arg: string, _o: unknown, cmd: Command) => {
      const { configFile, json } = globals(cmd);
      const r = await trustKey(configFile, await keyLine(arg));
      if (json) printJson({ fingerprint: r.key.fingerprint, comment: r.key.comment, added: r.added });
      else print(`${r.added ? 'trusted' : 'already trusted'}: ${r.key.fingerprint} ${r.key.comment}`);
    });
  key
    .command('untrust')
    .description('stop trusting a key')
    .argument('<fingerprint>', 'SHA256:... as key ls prints it')
    .action(async (fp: string, _o: unknown, cmd: Command) => {
      const { configFile } = globals(cmd);
      const k = await untrustKey(configFile, fp);
      print(`no longer trusted: ${k.fingerprint} ${k.comment}`);
    });
  key
    .command('ls')
    .description('list the trusted keys (this host\'s own first)')
    .action(async (_o: unknown, cmd: Command) => {
      const { root, configFile, json } = globals(cmd);
      const own = await readHostKey(root);
      const cfg = await loadHostsConfig(configFile);
      const rows = [...(own ? [{ ...own.publicKey, source: 'own' }] : []), ...cfg.trust.map((k) => ({ ...k, source: 'config' }))];
      if (json) return printJson(rows.map((k) => ({ fingerprint: k.fingerprint, comment: k.comment, source: k.source, key: formatPublicKey(k) })));
      print(table(['FINGERPRINT', 'COMMENT', 'SOURCE'], rows.map((k) => [k.fingerprint, k.comment, k.source])));
    });
}
