import type { Command } from 'commander';
import { addHost, getHost, knownHostsFilesFor, loadHostsConfig, removeHost, resolveConfigPath, splitCommand, type HostEntry } from '../../hosts/config.js';
import { connectSsh } from '../../ssh/connect.js';
import { stderrLogger } from '../../util/logger.js';
import { table } from '../output.js';
import { print, printJson } from '../context.js';
import { writeErrLine } from '../stdio.js';

interface HostGlobals {
  config?: string;
  json?: boolean;
  verbose?: boolean;
}

function globals(cmd: Command): { configFile: string; json: boolean; verbose: boolean } {
  const g = cmd.optsWithGlobals<HostGlobals>();
  return { configFile: resolveConfigPath(g.config), json: Boolean(g.json), verbose: Boolean(g.verbose) };
}

function row(h: HostEntry, defaultKnownHosts: string): string[] {
  return [h.name, h.url, h.identity ?? '(ssh-agent)', h.command.join(' '), h.knownHosts ?? defaultKnownHosts, h.trustOnFirstUse ? 'yes' : 'no'];
}

export function registerHostCommands(program: Command): void {
  const host = program.command('host').description(`manage the peer hosts (the hosts config: --config, $TSMIGRATE_CONFIG or /etc/tsmigrate/config.yaml)`);
  host
    .command('add')
    .description('add a host reached over SSH; its host key must be in known_hosts unless --trust-on-first-use')
    .argument('<name>')
    .argument('<url>', 'ssh://USER@ADDRESS[:PORT]')
    .option('--identity <file>', 'private key to log in with (default: ssh-agent only)')
    .option('--command <cmd>', 'what runs tsmigrate on the host, split on whitespace (default "tsmigrate")')
    .option('--known-hosts <file>', 'known_hosts file for this host (default: the config\'s knownHosts)')
    .option('--trust-on-first-use', 'accept and record the host key on the first connection')
    .action(async (name: string, url: string, o: { identity?: string; command?: string; knownHosts?: string; trustOnFirstUse?: boolean }, cmd: Command) => {
      const { configFile, json, verbose } = globals(cmd);
      const log = stderrLogger(verbose, writeErrLine);
      const h = await addHost(
        configFile,
        {
          name,
          url,
          ...(o.identity !== undefined ? { identity: o.identity } : {}),
          ...(o.command !== undefined ? { command: splitCommand(o.command) } : {}),
          ...(o.knownHosts !== undefined ? { knownHosts: o.knownHosts } : {}),
          trustOnFirstUse: Boolean(o.trustOnFirstUse),
        },
        { warn: (m) => log.warn(m) },
      );
      if (json) printJson(h);
      else print(`${h.name} ${h.url}`);
    });
  host
    .command('ls')
    .description('list the hosts')
    .action(async (_o: unknown, cmd: Command) => {
      const { configFile, json } = globals(cmd);
      const cfg = await loadHostsConfig(configFile);
      if (json) return printJson(cfg.hosts.map((h) => ({ ...h, knownHosts: knownHostsFilesFor(cfg, h)[0] })));
      print(table(['NAME', 'URL', 'IDENTITY', 'COMMAND', 'KNOWN_HOSTS', 'TOFU'], cfg.hosts.map((h) => row(h, cfg.knownHosts))));
    });
  host
    .command('rm')
    .description('remove a host from the config (its known_hosts entries stay)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { configFile } = globals(cmd);
      const h = await removeHost(configFile, name);
      print(h.name);
    });
  host
    .command('ping')
    .description('connect over SSH (checking the host key) and run `true` there')
    .argument('<name>')
    .option('--timeout <ms>', 'connect timeout in milliseconds', '15000')
    .action(async (name: string, o: { timeout: string }, cmd: Command) => {
      const { configFile, json, verbose } = globals(cmd);
      const cfg = await loadHostsConfig(configFile);
      const h = getHost(cfg, name);
      const t0 = Date.now();
      const timeoutMs = Number(o.timeout);
      const s = await connectSsh(h, {
        knownHostsFiles: knownHostsFilesFor(cfg, h),
        trustOnFirstUse: h.trustOnFirstUse,
        ...(Number.isFinite(timeoutMs) && timeoutMs > 0 ? { timeoutMs } : {}),
        logger: stderrLogger(verbose, writeErrLine),
      });
      try {
        await s.ping();
      } finally {
        s.close();
      }
      const ms = Date.now() - t0;
      if (json) printJson({ name: h.name, url: h.url, hostKey: s.hostKeyFingerprint, ms });
      else print(`${h.name} ok ${s.hostKeyFingerprint} ${ms}ms`);
    });
}
