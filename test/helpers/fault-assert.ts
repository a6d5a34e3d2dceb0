/**
 * What the move fault suite checks after every fault (issue 15): exactly one
 * running copy across the hosts, the workload's memory intact and going on,
 * nothing left on any host, and (by the caller) a retry that succeeds. The
 * local hosts are state roots on one machine, so "across the hosts" is each
 * root's `ps` plus the machine's process table, cgroups, mounts and leases.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_IPAM_BASE, listLeases } from '../../src/network/ipam.js';
import { cliOk, eventually } from './cli.js';
import { findProcesses } from './fault-agent.js';
import { leftovers, migrationIds, rootProcesses, stagingLeftovers, strayCgroups, strayMounts, unfinishedMigrations } from './leftovers.js';
import { readMemcheck } from './memcheck.js';

export interface FaultHost {
  /** the name other hosts' configs give it */
  name: string;
  root: string;
}

/** One container under test: its name and its memcheck status file (memcheck.ts). */
export interface Subject {
  name: string;
  status: string;
}

export interface PsRow {
  name: string;
  state: string;
  pid: number | null;
  ip: string | null;
}

export async function psRows(root: string): Promise<PsRow[]> {
  return JSON.parse(await cliOk(root, ['--json', 'ps'])) as PsRow[];
}

/**
 * Exactly one host runs the container (the others have no record of it), and
 * the machine has exactly one process of its workload: that copy's init.
 */
export async function assertOneCopy(hosts: FaultHost[], s: Subject, where?: FaultHost): Promise<{ host: FaultHost; row: PsRow }> {
  const seen: Array<{ host: FaultHost; row: PsRow }> = [];
  for (const h of hosts) {
    const row = (await psRows(h.root)).find((r) => r.name === s.name);
    if (row) seen.push({ host: h, row });
  }
  const desc = seen.map((x) => `${x.host.name}: ${x.row.state}`).join(', ') || 'none';
  assert.equal(seen.length, 1, `one record of ${s.name} across the hosts (${desc})`);
  const one = seen[0]!;
  assert.equal(one.row.state, 'running', `${s.name} runs on ${one.host.name} (${desc})`);
  if (where) assert.equal(one.host.name, where.name, `${s.name} runs on ${where.name} (${desc})`);
  const procs = findProcesses((argv) => argv[0] === '/bin/memcheck' && argv[2] === s.status);
  assert.deepEqual(procs, [one.row.pid], `the only workload process on the machine is ${s.name}'s init on ${one.host.name}`);
  return one;
}

/**
 * The workload found its memory as it left it (it verifies every word on each
 * pass and reports FAIL otherwise) and goes on: its pass count passes `since`
 * (the count seen before the fault) and advances. Returns the latest count.
 */
export async function assertMemoryIntact(pid: number, s: Subject, since = 0): Promise<number> {
  const first = await eventually(async () => readMemcheck(pid, s.status), 10000);
  assert.ok(first.ok, `${s.name}: ${first.ok ? '' : first.line}`);
  const later = await eventually(async () => {
    const now = readMemcheck(pid, s.status);
    if (now && !now.ok) return now;
    return now && now.pass >= Math.max(since, first.pass) + 3 ? now : undefined;
  }, 15000);
  assert.ok(later.ok, `${s.name}: ${later.ok ? '' : later.line}`);
  assert.ok(later.pass > since, `${s.name} went on from pass ${since} (now ${later.pass})`);
  return later.pass;
}

/** Leases held by any of the hosts' roots (for the container `name`, or any), in every subnet's lease dir. */
export async function leasesOf(hosts: FaultHost[], name?: string): Promise<Array<{ ip: string; root: string; container: string; dir: string }>> {
  const out: Array<{ ip: string; root: string; container: string; dir: string }> = [];
  for (const base of new Set([DEFAULT_IPAM_BASE, process.env['TSMIGRATE_IPAM_DIR']].filter((b): b is string => Boolean(b)))) {
    if (!existsSync(base)) continue;
    for (const sub of readdirSync(base)) {
      for (const l of await listLeases(path.join(base, sub))) {
        if ((name === undefined || l.container === name) && hosts.some((h) => path.resolve(h.root) === path.resolve(l.root))) out.push({ ip: l.ip, root: path.resolve(l.root), container: l.container, dir: path.join(base, sub) });
      }
    }
  }
  return out;
}

/**
 * What every host holds beyond the one running copy on `owner`: cgroups,
 * mounts, processes, staging dirs, leases, journals and migration records not
 * final. Empty when all is clean.
 */
export async function whatIsLeft(hosts: FaultHost[], s: Subject, owner: { host: FaultHost; row: PsRow }): Promise<string[]> {
  const left: string[] = [];
  const ids = hosts.flatMap((h) => migrationIds(h.root));
  for (const h of hosts) {
    const keep = h === owner.host ? [s.name] : [];
    const tag = (x: string) => `${h.name}: ${x}`;
    if (h !== owner.host) left.push(...leftovers(h.root, s.name).map(tag));
    left.push(...strayCgroups(h.root, keep).map(tag), ...strayMounts(h.root, keep).map(tag), ...rootProcesses(h.root, keep).map(tag));
    left.push(...stagingLeftovers(h.root, ids).map(tag), ...unfinishedMigrations(h.root).map(tag));
  }
  const leases = (await leasesOf(hosts, s.name)).map(({ ip, root }) => ({ ip, root }));
  const want = owner.row.ip ? [{ ip: owner.row.ip, root: path.resolve(owner.host.root) }] : [];
  if (JSON.stringify(leases) !== JSON.stringify(want)) {
    left.push(`leases of ${s.name}: ${JSON.stringify(leases)}, expected ${JSON.stringify(want)} (the running copy's address, held by ${owner.host.name})`);
  }
  return [...new Set(left)];
}

/** Nothing left anywhere (given `settleMs` for the hosts to converge after the fault). */
export async function assertNothingLeft(hosts: FaultHost[], s: Subject, owner: { host: FaultHost; row: PsRow }, settleMs = 15000): Promise<void> {
  let left: string[] = [];
  await eventually(async () => (left = await whatIsLeft(hosts, s, owner)).length === 0, settleMs, 200).catch(() => undefined);
  assert.deepEqual(left, [], `nothing left on the hosts after the fault`);
}

/**
 * All the properties after a fault: one running copy (on `where` when given),
 * memory intact and going on from `since`, nothing left. Returns where it runs and its pass count.
 */
export async function assertAfterFault(hosts: FaultHost[], s: Subject, o: { where?: FaultHost; since?: number; settleMs?: number } = {}): Promise<{ host: FaultHost; pass: number }> {
  // the hosts may still be converging (a peer noticing the lost source, a deferred clean-up)
  let one: { host: FaultHost; row: PsRow } | undefined;
  await eventually(async () => (one = await assertOneCopy(hosts, s, o.where)), o.settleMs ?? 15000, 200).catch(() => undefined);
  one ??= await assertOneCopy(hosts, s, o.where);
  const pass = await assertMemoryIntact(one.row.pid!, s, o.since);
  await assertNothingLeft(hosts, s, one, o.settleMs);
  return { host: one.host, pass };
}
