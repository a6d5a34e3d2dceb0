import type { Command } from 'commander';
import { LocalAgent } from '../../agent/server.js';
import { TsmError } from '../../errors/errors.js';
import { loadHostsConfig, resolveConfigPath } from '../../hosts/config.js';
import { sshPeer } from '../../move/connect.js';
import { parseAt, type Selector } from '../../restore/choose.js';
import { restoreFromStore, type HostProbe } from '../../restore/from-store.js';
import type { Runtime } from '../../runtime/context.js';
import { requireRoot } from '../../util/root.js';
import { validateName } from '../../util/name.js';
import { humanBytes } from '../output.js';
import { print, printJson } from '../context.js';
import type { RestoreFlags } from './checkpoints.js';
import { withStore } from './stores.js';
import { writeErrLine } from '../stdio.js';

/** This host, as a peer: its own agent called in-process. */
export function localHost(rt: Runtime): HostProbe {
  return {
    name: 'this host',
    connect: async () => {
      const agent = new LocalAgent(rt, 'local');
      return { agent, close: () => agent.onDisconnect() }; // aborts only what this agent object began
    },
  };
}

export async function restoreFromStoreCommand(name: string, checkpoint: string | undefined, o: RestoreFlags, cmd: Command): Promise<void> {
  validateName('container', name);
  if (o.name) throw new TsmError('EINVAL_ARG', '--name works only with this host\'s checkpoints, not with a store', { fix: 'leave out --name' });
  const chosen = [o.latest ? '--latest' : '', o.at ? '--at' : '', checkpoint ? 'CHECKPOINT' : ''].filter(Boolean);
  if (chosen.length !== 1) {
    throw new TsmError('EINVAL_ARG', chosen.length ? `${chosen.join(' and ')} contradict each other` : `which checkpoint of ${name}?`, { fix: 'give exactly one of --latest, --at TIME or a checkpoint id' });
  }
  const selector: Selector = o.latest ? { kind: 'latest' } : o.at ? { kind: 'at', time: parseAt(o.at, new Date()) } : { kind: 'id', id: checkpoint! };
  requireRoot('restore a checkpoint');
  const configFile = resolveConfigPath(cmd.optsWithGlobals<{ config?: string }>().config);
  await withStore(cmd, { store: o.from, encryptKey: o.encryptKey }, false, async (store, rt, json) => {
    const cfg = await loadHostsConfig(configFile);
    if (o.on) cfg.hosts.find((h) => h.name === o.on) ?? (() => {
      throw new TsmError('ENOENT_HOST', `no host named "${o.on}" in ${configFile}`, { fix: 'add it with tsmigrate host add, or list them with tsmigrate host ls' });
    })();
    const peer = (h: string): HostProbe => ({ name: h, connect: sshPeer(configFile, h, { logger: rt.logger }) });
    const target = o.on ? peer(o.on) : localHost(rt);
    const hosts = [localHost(rt), ...cfg.hosts.map((h) => peer(h.name))];
    const r = await restoreFromStore(rt, {
      name, selector, store, target, hosts, force: Boolean(o.force),
      onWarning: (m) => writeErrLine(`tsmigrate: warning: ${m}`),
    });
    if (json) return printJson({ name, ...r, ms: Math.round(r.ms) });
    print(`restored ${name} on ${r.host} from ${r.id} (taken ${r.createdAt}; ${humanBytes(r.bytes)} in ${Math.round(r.ms)} ms)`);
  });
}
