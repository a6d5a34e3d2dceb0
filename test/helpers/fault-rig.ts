import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI, cli, cliOk, type CliResult } from './cli.js';
import { releaseLease } from '../../src/network/ipam.js';
import { faultAgentCommand, findProcesses } from './fault-agent.js';
import { leasesOf, type FaultHost, type Subject } from './fault-assert.js';
import { jsonLines, type JsonEvent } from './json-lines.js';
import { unfinishedMigrations } from './leftovers.js';
import { Rig } from './rig.js';
import { startSlowLink, type SlowLink } from './slow-link.js';
import { trustRoot } from './trust.js';

/** Where slow links listen (no rig host uses it). */
export const SLOW_LINK_ADDR = '127.0.0.9';

export interface MoveEvent {
  phase: string;
  message?: string;
  bytes?: number;
}

export interface MoveRun extends CliResult {
  events: MoveEvent[];
  /** from the spawn to the exit */
  ms: number;
  report?: Record<string, unknown>;
}

/**
 * Local hosts that are all sshd peers of each other (so a container can go
 * A to B and back), each state root with a config naming the others. Faulty
 * variants of a peer are host entries with another command (fault-agent.ts).
 */
export class FaultRig {
  readonly rig = new Rig();
  readonly hosts: FaultHost[] = [];
  private readonly lines = new Map<string, { url: string; identity: string; command: string }>();
  private readonly added = new Set<string>();

  async start(...specs: Array<[name: string, addr: string]>): Promise<FaultHost[]> {
    for (const [name, addr] of specs) {
      const h = await this.rig.start(name, addr);
      const c = h.addCommand;
      this.lines.set(name, { url: c[3]!, identity: c[5]!, command: c[9]! });
      copyFileSync(c[7]!, path.join(h.root, `known_hosts`));
      this.hosts.push({ name, root: h.root });
    }
    for (const from of this.hosts) {
      for (const to of this.hosts) {
        if (to === from) continue;
        await this.addHost(from, to);
        await trustRoot(this.config(to), from.root);
      }
    }
    return this.hosts;
  }

  config(h: FaultHost): string {
    return path.join(h.root, 'config.yaml');
  }

  /** `tsmigrate --config <h's config> ARGS` on h's root. */
  cli(h: FaultHost, args: string[], timeoutMs = 120000): Promise<CliResult> {
    return cli(h.root, ['--config', this.config(h), ...args], { env: { SSH_AUTH_SOCK: '' }, timeoutMs });
  }
  cliOk(h: FaultHost, args: string[], timeoutMs = 120000): Promise<string> {
    return cliOk(h.root, ['--config', this.config(h), ...args], { env: { SSH_AUTH_SOCK: '' }, timeoutMs });
  }

  /** Add `to` to `from`'s config under `to.name`, or, with faults, under "to.name.fault.fault" running the fault agent. Returns the entry's name. */
  async addHost(from: FaultHost, to: FaultHost, ...faults: string[]): Promise<string> {
    const name = faults.length ? `${to.name}.${faults.join('.')}` : to.name;
    await this.addHostCommand(from, to, name, faults.length ? faultAgentCommand(to.root, faults).split(' ') : []);
    return name;
  }

  /**
   * Add `to` to `from`'s config as `name`, its command `prefix` followed by
   * the rig's tsmigrate command (or `prefix` alone when it is the fault agent).
   */
  async addHostCommand(from: FaultHost, to: FaultHost, name: string, prefix: string[]): Promise<void> {
    if (this.added.has(`${from.name}>${name}`)) return;
    const l = this.lines.get(to.name)!;
    // every source keeps its own copy of the peer's host key, as an operator's known_hosts would
    const known = path.join(from.root, `known_hosts.${to.name}`);
    if (!existsSync(known)) copyFileSync(path.join(to.root, 'known_hosts'), known);
    const command = prefix.some((a) => a.endsWith('fault-agent.js')) ? prefix.join(' ') : [...prefix, l.command].join(' ');
    await this.cliOk(from, ['host', 'add', name, l.url, '--identity', l.identity, '--known-hosts', known, '--command', command]);
    this.added.add(`${from.name}>${name}`);
  }

  /**
   * A host entry in `from`'s config reaching `to` through a slow link
   * (slow-link.ts) in front of its sshd: named "to.name.slow", with a
   * known_hosts line for the relay's address carrying `to`'s current key.
   */
  async addSlowHost(from: FaultHost, to: FaultHost, bytesPerSecond: number): Promise<{ name: string; link: SlowLink }> {
    const l = this.lines.get(to.name)!;
    const m = /^ssh:\/\/root@([\d.]+):(\d+)$/.exec(l.url)!;
    const link = await startSlowLink({ listen: SLOW_LINK_ADDR, target: { host: m[1]!, port: Number(m[2]) }, bytesPerSecond });
    const name = `${to.name}.slow`;
    const known = path.join(from.root, `known_hosts.${name}`);
    const key = this.rig.run('line', to.name).trim().split(' ').slice(1).join(' ');
    writeFileSync(known, `[${link.host}]:${link.port} ${key}\n`);
    await this.cli(from, ['host', 'rm', name]);
    await this.cliOk(from, ['host', 'add', name, `ssh://root@${link.host}:${link.port}`, '--identity', l.identity, '--known-hosts', known, '--command', l.command]);
    return { name, link };
  }

  /** Trust `to`'s current host key again in every other host's copy (after a rekey). */
  retrust(to: FaultHost): void {
    const line = this.rig.run('line', to.name).trim();
    for (const from of this.hosts) if (from !== to) writeFileSync(path.join(from.root, `known_hosts.${to.name}`), `${line}\n`);
  }

  /**
   * `tsmigrate --json move NAME HOST ARGS` from `from`; onEvent sees each
   * progress event as it is printed (with the child, to signal it).
   */
  move(from: FaultHost, name: string, host: string, o: { args?: string[]; entry?: string[]; onEvent?: (e: MoveEvent, child: ChildProcess) => void } = {}): Promise<MoveRun> {
    return runMove(['--root', from.root, '--config', this.config(from), '--json', 'move', name, host, ...(o.args ?? [])], o);
  }

  /** The phases a move's progress events named, in order, each once. */
  static phases(r: MoveRun): string[] {
    return [...new Set(r.events.map((e) => e.phase))];
  }

  /**
   * The container gone from every host, whatever a failed test left: its
   * records, workload processes and address leases (so the next test starts clean).
   */
  async wipe(s: Subject): Promise<void> {
    for (const h of this.hosts) await this.cli(h, ['rm', '-f', s.name]);
    for (const pid of findProcesses((argv) => argv[0] === '/bin/memcheck' && argv[2] === s.status)) process.kill(pid, 'SIGKILL');
    for (const l of await leasesOf(this.hosts, s.name)) await releaseLease(l.dir, l.ip, { root: l.root, container: l.container });
    // journals and records a failure left unfinished: set aside (renamed), no longer listed
    for (const h of this.hosts) {
      for (const u of unfinishedMigrations(h.root)) {
        const [dir, id] = u.split(/[ :]/);
        const f = path.join(h.root, 'migrations', dir!, `${id}${dir === 'outgoing' ? '.jsonl' : '.json'}`);
        renameSync(f, `${f}.wiped`);
      }
    }
  }

  /** Stop the hosts and remove their roots; leases a bug left to the roots go too (they are machine-wide). */
  async stop(): Promise<void> {
    for (const l of await leasesOf(this.hosts)) await releaseLease(l.dir, l.ip, { root: l.root, container: l.container });
    this.rig.stopAll(...this.hosts.map((h) => h.name));
  }
}

/**
 * `tsmigrate ARGV` (a --json move) as a child process (`entry`: the CLI
 * with source faults, [FAULT_CLI, '--fault', NAME]): onEvent sees each
 * progress event as it is printed (with the child, to signal it); resolves
 * with the exit code, the output, the events and the final report.
 */
export function runMove(argv: string[], o: { entry?: string[]; onEvent?: (e: MoveEvent, child: ChildProcess) => void } = {}): Promise<MoveRun> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...(o.entry ?? [CLI]), ...argv], { env: { ...process.env, SSH_AUTH_SOCK: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const events: MoveEvent[] = [];
    let report: Record<string, unknown> | undefined;
    let stderr = '';
    const stdout = jsonLines(child.stdout, (e) => {
      if (e?.event === 'progress') {
        events.push(e as JsonEvent & MoveEvent);
        o.onEvent?.(e as JsonEvent & MoveEvent, child);
      } else if (e?.event === 'done') report = e.report;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 240000);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout: stdout(), stderr, events, ms: performance.now() - t0, ...(report ? { report } : {}) });
    });
  });
}
