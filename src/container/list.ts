import { profileOf } from '../security/resolve.js';
import { readProcessSecurity, securitySummary } from '../security/view.js';
import { promises as fs } from 'node:fs';
import type { Runtime } from '../runtime/context.js';
import { oomReport, readOomRecord, type OomReport } from './oom.js';
import { loadView } from './view.js';
import type { ContainerStatus, ContainerView } from './types.js';

export interface PsRow {
  name: string;
  state: ContainerStatus;
  pid: number | null;
  ip: string | null;
  memoryBytes: number | null;
  uptimeSec: number | null;
  image: string;
  command: string;
  exitCode: number | null;
  /** OOM kills over the container's life, when the last one was seen, and whether it ended of one */
  oomKills: number;
  lastOomKillAt: string | null;
  oomKilled: boolean;
}

async function oomOf(rt: Runtime, view: ContainerView, live: boolean): Promise<OomReport> {
  const record = await readOomRecord(rt.paths.container(view.config.name));
  const counted = live && !record ? (await rt.cgroups(view.config.name).memoryEvents().catch(() => undefined))?.oomKills : undefined;
  return oomReport(record, counted, view.exit);
}

export async function listContainers(rt: Runtime): Promise<PsRow[]> {
  const rows: PsRow[] = [];
  for (const name of await rt.store.names()) {
    const view = await loadView(rt, name).catch(() => undefined);
    if (!view) continue;
    const live = view.status === 'running' || view.status === 'frozen';
    const stats = live ? await rt.cgroups(name).stats().catch(() => undefined) : undefined;
    rows.push({
      name,
      state: view.status,
      pid: live ? view.state.initPid ?? null : null,
      ip: view.state.network?.ip ?? null,
      memoryBytes: stats?.memoryBytes ?? null,
      uptimeSec: live && view.state.startedAt ? Math.round((Date.now() - Date.parse(view.state.startedAt)) / 1000) : null,
      image: view.config.image.name,
      command: view.config.command.join(' '),
      exitCode: view.exit?.exitCode ?? null,
      ...(await oomOf(rt, view, live)),
    });
  }
  return rows;
}

/** inspect: config, pids, cgroup paths and limits read back, mounts, network. */
export async function inspectContainer(rt: Runtime, name: string): Promise<Record<string, unknown>> {
  const view = await loadView(rt, name);
  const live = view.status === 'running' || view.status === 'frozen';
  const cg = rt.cgroups(name);
  const mounts = live
    ? (await fs.readFile(`/proc/${view.state.initPid}/mountinfo`, 'utf8').catch(() => ''))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const f = l.split(' ');
          const sep = f.indexOf('-');
          return { target: f[4], fstype: f[sep + 1], source: f[sep + 2], options: f[5] };
        })
    : [];
  const oom = await oomOf(rt, view, live);
  return {
    name,
    status: view.status,
    config: { ...view.config, security: undefined },
    security: {
      ...securitySummary(profileOf(view.config)),
      ...(view.config.security ? {} : { legacy: 'made before security profiles: runs with root\'s powers' }),
      init: live ? await readProcessSecurity(view.state.initPid!) : null,
    },
    pid: live ? view.state.initPid : null,
    shimPid: view.state.shimPid ?? null,
    startedAt: view.state.startedAt ?? null,
    exit: view.exit ? { ...view.exit, oomKilled: oom.oomKilled } : null,
    oomKills: oom.oomKills,
    lastOomKillAt: oom.lastOomKillAt,
    pids: live ? await cg.pids().catch(() => []) : [],
    cgroup: {
      paths: view.state.cgroupPaths ?? cg.paths,
      limits: live ? await cg.readLimits(view.config.limits).catch(() => null) : null,
      stats: live ? await cg.stats().catch(() => null) : null,
      memoryEvents: live ? await cg.memoryEvents().catch(() => null) : null,
      freezer: live ? await cg.freezerState().catch(() => null) : null,
    },
    rootfs: view.state.rootfs,
    mounts,
    network: view.state.network ?? null,
  };
}
