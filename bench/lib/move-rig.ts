/**
 * The move benchmark's peer host: a real sshd on a loopback address from
 * scripts/local-hosts.sh, in a private rig directory (its own client key,
 * host key and state root), registered in a private hosts config.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { addHost } from '../../src/hosts/config.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SCRIPT = path.join(REPO, 'scripts/local-hosts.sh');

export interface RigHost {
  name: string;
  addr: string;
  port: number;
  /** the host's tsmigrate state root */
  root: string;
  /** the rig's client private key */
  identity: string;
  /** a known_hosts file holding only this host's key */
  knownHosts: string;
}

/** A free TCP port on `addr` (the kernel picks one; a race with another listener is retried by the caller). */
function freePort(addr: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, addr, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export class MoveRig {
  readonly hostsDir: string;
  readonly stateDir: string;
  private readonly started: string[] = [];
  constructor(readonly base: string) {
    this.hostsDir = path.join(base, 'hosts');
    this.stateDir = path.join(base, 'state');
  }

  private run(args: string[]) {
    // no ssh-agent: only the rig's key
    return execa('bash', [SCRIPT, ...args], {
      env: { TSMIGRATE_HOSTS_DIR: this.hostsDir, TSMIGRATE_HOSTS_STATE: this.stateDir, SSH_AUTH_SOCK: '' },
      stdin: 'ignore',
      timeout: 60_000,
    });
  }

  /** Start NAME's sshd on ADDR (loopback only) and add it to `configFile`. */
  async start(name: string, addr: string, configFile: string): Promise<RigHost> {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(addr)) throw new Error(`not a loopback address: ${addr}`);
    let port = 0;
    let lastErr: Error | undefined;
    for (let i = 0; i < 5 && port === 0; i++) {
      const p = await freePort(addr);
      this.started.push(name);
      try {
        await this.run(['start', name, addr, String(p)]);
        port = p;
      } catch (e) {
        lastErr = e as Error;
        await this.run(['stop', name]).catch(() => undefined);
        this.started.pop();
      }
    }
    if (port === 0) throw new Error(`cannot start the rig host ${name} on ${addr}: ${lastErr?.message ?? ''}`);
    const h: RigHost = {
      name,
      addr,
      port,
      root: path.join(this.stateDir, name),
      identity: path.join(this.hostsDir, 'client_ed25519'),
      knownHosts: path.join(this.hostsDir, name, 'known_hosts'),
    };
    await addHost(configFile, {
      name,
      url: `ssh://root@${addr}:${port}`,
      identity: h.identity,
      knownHosts: h.knownHosts,
      command: [path.join(this.hostsDir, 'bin/tsmigrate'), '--root', h.root],
      trustOnFirstUse: false,
    });
    return h;
  }

  /** Stop every host this rig started and purge its state root (its containers must be gone). */
  async stopAll(): Promise<string[]> {
    const problems: string[] = [];
    for (const n of this.started.splice(0).reverse()) {
      await this.run(['stop', n, '--purge']).catch((e: Error) => problems.push(`${n}: ${e.message}`));
    }
    return problems;
  }
}
