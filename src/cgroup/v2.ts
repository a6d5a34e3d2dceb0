/**
 * cgroup v2 backend: one directory <mount>/<parent>/<name> in the unified hierarchy.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { attachDeviceFilter } from './device-filter.js';
import type { DeviceRule } from '../security/devices.js';
import { TsmError } from '../errors/errors.js';
import { freezeV2, thawV2, v2FreezerState, type FreezerState } from '../freezer/freezer.js';
import { gatherFacts } from './host.js';
import { hugetlbReadFiles } from './hugetlb.js';
import { parseV2Limits, v2Files, type Limits } from './limits.js';
import { deviceNames, deviceNumbers, limitProblems, problemError, type HostFacts, type LimitProblem } from './support.js';
import { enableV2Controllers, v2Ancestors, words } from './v2control.js';
import type { BackendOptions, CgroupManager, CgroupStats, MemoryEvents } from './manager.js';
import {
  checkPid, isDir, mkdirIdempotent, parseKeyValues, parsePidList, readCgroupFile, readCgroupFileOpt,
  definedOnly, numberOf, removeCgroupDir, safeJoin, signalPids, writeCgroupFile,
} from './fsutil.js';

/** Controllers we enable in every ancestor's cgroup.subtree_control (where available). */
export const V2_WANTED_CONTROLLERS = ['memory', 'cpu', 'cpuset', 'pids', 'io', 'hugetlb'] as const;

const LIMIT_FILES = ['memory.max', 'memory.low', 'cpu.max', 'cpu.weight', 'cpuset.cpus', 'pids.max', 'io.weight', 'io.max'];

const V1_ONLY = (c: string, flag: string) => ({
  reason: `cgroup v2 (the backend in use) has no ${c} controller`,
  fix: `match the container's packets by its cgroup path in nftables (socket cgroupv2) instead, or drop ${flag}`,
});

export class V2Manager implements CgroupManager {
  readonly kind = 'v2' as const;
  readonly paths: Record<string, string>;
  private readonly dir: string;
  private readonly ancestors: string[];

  constructor(private readonly mount: string, parent: string, name: string, private readonly o: BackendOptions) {
    this.dir = safeJoin(mount, parent, name);
    this.paths = { unified: this.dir };
    this.ancestors = v2Ancestors(mount, parent);
  }

  private async facts(limits: Limits): Promise<HostFacts> {
    const offered = new Set(words(await readCgroupFileOpt(this.mount, 'cgroup.controllers')));
    const u: HostFacts['unavailable'] = { net_cls: V1_ONLY('net_cls', '--net-cls-classid'), net_prio: V1_ONLY('net_prio', '--net-prio') };
    if (!offered.has('hugetlb')) u.hugetlb = { reason: 'cgroup2 does not offer the hugetlb controller', fix: 'use a kernel with CONFIG_CGROUP_HUGETLB, or drop --hugetlb-limit' };
    if (!offered.has('io')) u.throttle = { reason: 'cgroup2 does not offer the io controller', fix: 'use a kernel with CONFIG_BLK_DEV_THROTTLING, or drop the throttles' };
    return gatherFacts(limits, this.o.probe, u);
  }

  async check(limits: Limits, where?: string): Promise<LimitProblem[]> {
    return limitProblems(limits, await this.facts(limits), where);
  }

  async create(): Promise<void> {
    for (const [i, dir] of this.ancestors.entries()) {
      if (i > 0) await mkdirIdempotent(dir);
      await enableV2Controllers(dir, V2_WANTED_CONTROLLERS, this.o.logger);
    }
    await mkdirIdempotent(this.dir);
  }

  async apply(limits: Limits): Promise<void> {
    const facts = await this.facts(limits);
    const problems = limitProblems(limits, facts);
    if (problems[0]) throw problemError(problems[0]);
    const needsMems = limits.cpusetCpus !== undefined;
    const mems = needsMems ? (await readCgroupFileOpt(path.dirname(this.dir), 'cpuset.mems.effective')) || '0' : '0';
    const files = v2Files(limits, { mems, devices: deviceNumbers(facts) });
    if (files.length === 0) return;
    const available = new Set(words(await readCgroupFile(this.dir, 'cgroup.controllers')));
    for (const { file } of files) {
      const c = file.slice(0, file.indexOf('.'));
      if (!available.has(c)) {
        throw new TsmError('ECGROUP_MISSING', `cgroup controller ${c} is not enabled for ${this.dir} (needed for ${file})`, {
          fix: `enable it in every ancestor: echo +${c} > <ancestor>/cgroup.subtree_control (see cgroup.controllers)`,
        });
      }
    }
    for (const { file, value, optional } of files) {
      if (optional && !(await fs.stat(path.join(this.dir, file)).then(() => true, () => false))) continue;
      await writeCgroupFile(this.dir, file, value);
    }
  }

  async applyDevices(rules: readonly DeviceRule[]): Promise<void> {
    await attachDeviceFilter(this.dir, rules);
  }

  async addProcess(pid: number): Promise<void> {
    await writeCgroupFile(this.dir, 'cgroup.procs', String(checkPid(pid)));
  }

  async pids(): Promise<number[]> {
    return parsePidList(await readCgroupFile(this.dir, 'cgroup.procs')).sort((a, b) => a - b);
  }

  private freezeOpts(timeoutMs?: number) {
    return { timeoutMs, pollMs: this.o.freezePollMs, io: this.o.freezerIO };
  }

  async freeze(timeoutMs?: number): Promise<void> {
    await freezeV2(this.dir, this.freezeOpts(timeoutMs));
  }

  async thaw(timeoutMs?: number): Promise<void> {
    await thawV2(this.dir, this.freezeOpts(timeoutMs));
  }

  async freezerState(): Promise<FreezerState> {
    return v2FreezerState(this.dir, this.o.freezerIO);
  }

  async stats(): Promise<CgroupStats> {
    const s: CgroupStats = {};
    const mem = await readCgroupFileOpt(this.dir, 'memory.current');
    if (mem !== undefined) s.memoryBytes = Number(mem);
    const pidsCur = await readCgroupFileOpt(this.dir, 'pids.current');
    s.pids = pidsCur !== undefined ? Number(pidsCur) : (await this.pids()).length;
    const usage = parseKeyValues((await readCgroupFileOpt(this.dir, 'cpu.stat')) ?? '').get('usage_usec');
    if (usage !== undefined) s.cpuUsageNs = Number(usage) * 1000;
    const oom = parseKeyValues((await readCgroupFileOpt(this.dir, 'memory.events')) ?? '').get('oom_kill');
    if (oom !== undefined) s.oomKills = Number(oom);
    return s;
  }

  async readLimits(known: Limits = {}): Promise<Limits> {
    const files: Record<string, string | undefined> = {};
    const want = [...LIMIT_FILES, ...hugetlbReadFiles(await this.o.probe.hugepageSizes(), 'v2')];
    for (const f of want) files[f] = await readCgroupFileOpt(this.dir, f);
    return parseV2Limits(files, { deviceNames: deviceNames(await gatherFacts(known, this.o.probe, {})) });
  }

  freezerPath(): string {
    return this.dir;
  }

  async killAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!(await this.exists())) return;
    if (signal === 'SIGKILL' && (await fs.stat(path.join(this.dir, 'cgroup.kill')).then(() => true, () => false))) {
      await writeCgroupFile(this.dir, 'cgroup.kill', '1');
      return;
    }
    // No cgroup.kill (kernel < 5.14) or another signal: freeze so nothing forks
    // while we signal, then restore (SIGKILLed tasks need to run to die).
    const prev = await this.freezerState().catch(() => 'thawed' as const);
    let froze = false;
    if (prev !== 'frozen') froze = await this.freeze().then(() => true, () => false);
    signalPids(await this.pids(), signal);
    if (froze) await this.thaw();
    else if (signal === 'SIGKILL') await this.thaw().catch((e: Error) => this.o.logger.warn(`killAll: cannot thaw: ${e.message}`));
  }

  async destroy(): Promise<void> {
    await removeCgroupDir(this.dir, Date.now() + this.o.destroyTimeoutMs);
  }

  async exists(): Promise<boolean> {
    return isDir(this.dir);
  }

  async memoryEvents(): Promise<MemoryEvents> {
    const events = parseKeyValues((await readCgroupFileOpt(this.dir, 'memory.events')) ?? '');
    const oomKills = numberOf(events.get('oom_kill'));
    const limitHits = numberOf(events.get('max'));
    const peakBytes = numberOf(await readCgroupFileOpt(this.dir, 'memory.peak'));
    return definedOnly<MemoryEvents>({ oomKills, limitHits, peakBytes });
  }

  oomKillFile(): string {
    return path.join(this.dir, 'memory.events');
  }
}
