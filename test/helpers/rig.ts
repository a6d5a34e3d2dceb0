import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO } from './cli.js';
import { peerConfigOf, trustRoot } from './trust.js';

/** Local test hosts (real sshd on loopback) from scripts/local-hosts.sh, in a private rig dir. */
export class Rig {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'tsm-rig-'));
  readonly env: NodeJS.ProcessEnv;
  constructor() {
    this.env = { ...process.env, TSMIGRATE_HOSTS_DIR: path.join(this.dir, 'hosts'), TSMIGRATE_HOSTS_STATE: path.join(this.dir, 'state') };
  }
  run(...args: string[]): string {
    return execFileSync('bash', [path.join(REPO, 'scripts/local-hosts.sh'), ...args], { env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
  /** Start a local host; it trusts the signing keys of the state roots `trusts` (moves from them are accepted). */
  async start(name: string, addr: string, trusts: string[] = []): Promise<{ port: number; root: string; addCommand: string[] }> {
    const port = await freePort(addr);
    this.run('start', name, addr, String(port));
    const line = this.run('add-command', name).trim().split('\n').pop()!;
    // "tsmigrate host add NAME URL --identity F --known-hosts F --command "..."": parse it into argv
    const m = /^tsmigrate host add (\S+) (\S+) --identity (\S+) --known-hosts (\S+) --command "(.*)"$/.exec(line);
    if (!m) throw new Error(`unexpected add-command output: ${line}`);
    const command = m[5]!;
    const root = /--root (\S+)/.exec(command)?.[1] ?? path.join(this.dir, 'state', name);
    for (const src of trusts) await trustRoot(peerConfigOf(root), src);
    return { port, root, addCommand: ['host', 'add', m[1]!, m[2]!, '--identity', m[3]!, '--known-hosts', m[4]!, '--command', command] };
  }
  stopAll(...names: string[]): void {
    for (const n of names) {
      try {
        this.run('stop', n, '--purge');
      } catch {
        /* already stopped */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** Start a rig peer and add it as a host of the state root `root` (with the root's own copy of its host key). */
export async function addRigPeer(rig: Rig, name: string, addr: string, root: string, add: (args: string[]) => Promise<unknown>): Promise<string> {
  const h = await rig.start(name, addr, [root]);
  const cmd = [...h.addCommand];
  const i = cmd.indexOf('--known-hosts') + 1;
  copyFileSync(cmd[i]!, path.join(root, 'known_hosts'));
  cmd[i] = path.join(root, 'known_hosts');
  await add(cmd);
  return h.root;
}
