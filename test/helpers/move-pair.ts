import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cli, cliOk, eventually, tempRoot, CLI } from './cli.js';
import { importBusybox } from './images.js';
import { jsonLines } from './json-lines.js';
import { leftovers } from './leftovers.js';
import { Rig } from './rig.js';

export const COUNTER = ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/count; sleep 0.1; done'];

/** A source state root A and one rig peer B (real sshd on loopback), for move fault tests. */
export class MovePair {
  readonly A = tempRoot('tsm-pairA-');
  readonly CFG = path.join(this.A, 'config.yaml');
  readonly rig = new Rig();
  B = '';
  host = '';
  hostCmd: string[] = [];

  async start(host: string, addr: string): Promise<void> {
    const h = await this.rig.start(host, addr, [this.A]);
    this.host = host;
    this.B = h.root;
    this.hostCmd = [...h.addCommand];
    const i = this.hostCmd.indexOf('--known-hosts') + 1;
    copyFileSync(this.hostCmd[i]!, path.join(this.A, 'known_hosts'));
    this.hostCmd[i] = path.join(this.A, 'known_hosts');
    await this.ta(this.hostCmd);
    await importBusybox(this.A);
  }

  /** the peer's agent command replaced (argv before `agent --stdio`), or restored with undefined */
  async peerCommand(command: string | undefined): Promise<void> {
    await this.ta(['host', 'rm', this.host]);
    const cmd = [...this.hostCmd];
    if (command !== undefined) cmd[cmd.indexOf('--command') + 1] = command;
    await this.ta(cmd);
  }

  ta(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
    return cliOk(this.A, ['--config', this.CFG, ...args], { env: { SSH_AUTH_SOCK: '', ...env }, timeoutMs: 180000 });
  }
  tb(args: string[]): Promise<string> {
    return cliOk(this.B, args, { timeoutMs: 60000 });
  }

  async count(root: string, name: string): Promise<number> {
    return Number((await cliOk(root, ['exec', name, '--', 'cat', '/tmp/count'])).trim());
  }
  async stateOf(root: string, name: string): Promise<string | undefined> {
    return (JSON.parse(await cliOk(root, ['--json', 'ps'])) as Array<{ name: string; state: string }>).find((r) => r.name === name)?.state;
  }
  /** phases of the peer's migration records, by id */
  peerRecords(): Array<{ id: string; phase: string; reason?: string; holdUntil?: string }> {
    const dir = path.join(this.B, 'migrations/incoming');
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { id: string; phase: string });
  }
  /** the last phase of each of the source's journals, by id */
  journals(): Map<string, string> {
    const dir = path.join(this.A, 'migrations/outgoing');
    const out = new Map<string, string>();
    if (!existsSync(dir)) return out;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.jsonl'))) {
      const lines = readFileSync(path.join(dir, f), 'utf8').trim().split('\n');
      out.set(path.basename(f, '.jsonl'), (JSON.parse(lines.at(-1)!) as { phase: string }).phase);
    }
    return out;
  }

  /** One running copy, on `where`; nothing on the other host; no peer record left open; the counter advancing. */
  async assertOneCopy(name: string, where: 'A' | 'B'): Promise<void> {
    const [here, there] = where === 'A' ? [this.A, this.B] : [this.B, this.A];
    assert.equal(await this.stateOf(here, name), 'running', `running on ${where}`);
    assert.equal(await this.stateOf(there, name), undefined, 'no copy on the other host');
    assert.deepEqual(leftovers(there, name), [], 'nothing left on the other host');
    for (const m of this.peerRecords()) assert.ok(['committed', 'aborted'].includes(m.phase), `peer migration ${m.id} is ${m.phase}`);
    const c = await this.count(here, name);
    await eventually(async () => (await this.count(here, name)) > c + 2, 10000);
  }

  /** `tsmigrate --json move NAME HOST ...args`, with each progress event handed to onEvent. */
  move(name: string, args: string[] = [], onEvent?: (e: { phase: string }, child: ChildProcess) => void, env: NodeJS.ProcessEnv = {}) {
    return new Promise<{ code: number; stdout: string; stderr: string; child: ChildProcess }>((resolve) => {
      const child = spawn(process.execPath, [CLI, '--root', this.A, '--config', this.CFG, '--json', 'move', name, this.host, ...args], {
        env: { ...process.env, SSH_AUTH_SOCK: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      const stdout = jsonLines(child.stdout, (e) => {
        if (e?.event === 'progress' && e.phase) onEvent?.({ phase: e.phase }, child);
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout: stdout(), stderr, child }));
    });
  }

  async stop(names: string[]): Promise<void> {
    for (const n of names) {
      await cli(this.A, ['rm', '-f', n]);
      if (this.B) await cli(this.B, ['rm', '-f', n]);
    }
    this.rig.stopAll(this.host);
    rmSync(this.A, { recursive: true, force: true });
  }
}
