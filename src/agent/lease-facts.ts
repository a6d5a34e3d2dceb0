/**
 * The facts network/lease-repair.ts plans on, read from the state roots of
 * this machine (a lease names its holders' roots; local test hosts share one
 * machine), and the repair as `recover` and the peer's `begin` run it.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadView } from '../container/view.js';
import { type LeaseFacts, type LeaseRepair, type MigrationPhase, gatherLeaseCases, planLeaseRepair, repairLeases } from '../network/lease-repair.js';
import type { Runtime } from '../runtime/context.js';
import { statePaths } from '../state/paths.js';
import { MigrationRecords } from './migrations.js';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export function leaseFacts(rt: Runtime): LeaseFacts {
  return {
    async containerExists(root, name) {
      // an unreadable name or root counts as existing: nothing is freed on a guess
      if (!path.isAbsolute(root) || !NAME.test(name)) return true;
      return fs.stat(statePaths(root).container(name)).then(
        () => true,
        (e: NodeJS.ErrnoException) => e.code !== 'ENOENT',
      );
    },
    async migrationPhase(root, id): Promise<MigrationPhase> {
      if (!path.isAbsolute(root)) return 'unknown';
      const m = await new MigrationRecords(statePaths(root)).get(id).catch(() => undefined);
      return m?.phase ?? 'unknown';
    },
    async addressesInUse(root) {
      if (path.resolve(root) !== rt.paths.root) return [];
      const out: Array<{ container: string; ip: string }> = [];
      for (const name of await rt.store.names()) {
        const v = await loadView(rt, name).catch(() => undefined);
        const ip = v?.state.network?.mode === 'bridge' ? v.state.network.ip : undefined;
        if (v && ip && (v.status === 'running' || v.status === 'frozen' || v.status === 'creating')) out.push({ container: name, ip });
      }
      return out;
    },
  };
}

/** A repair as a line of `recover`'s table. */
export interface LeaseRecoverRow {
  migration: string;
  container: string;
  side: 'source' | 'peer';
  action: 'cleaned';
  detail: string;
}

/** Repair the leases of this state root a crash left behind (`only`: one address). */
export async function repairLeasesHere(rt: Runtime, o: { only?: string } = {}): Promise<LeaseRecoverRow[]> {
  if (!rt.network.leaseDir) return [];
  const done: LeaseRepair[] = await repairLeases(rt.network.leaseDir, os.hostname(), rt.paths.root, leaseFacts(rt), o);
  return done.map((r) => ({ migration: r.migration ?? '-', container: r.container, side: r.side, action: 'cleaned', detail: `address ${r.ip}: ${r.why}` }));
}

/** What a repair of one address would do, without doing it (the peer's pre-flight). */
export async function plannedLeaseRepairs(rt: Runtime, ip: string): Promise<LeaseRepair[]> {
  if (!rt.network.leaseDir) return [];
  return planLeaseRepair(await gatherLeaseCases(rt.network.leaseDir, os.hostname(), rt.paths.root, leaseFacts(rt), ip));
}
