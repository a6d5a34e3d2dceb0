/**
 * cgroup v1 backend: one directory <mountpoint>/<parent>/<name> per controller
 * hierarchy we use. On hybrid hosts the container also gets a directory in the
 * unified (cgroup2) hierarchy so its pids are tracked there and cgroup.kill works;
 * the freezer stays the v1 one (freezer.state), which is what CRIU's
 * --freeze-cgroup expects. Every other mounted hierarchy (devices, name=systemd,
 * ...) gets a directory too, with no limits.
 */
import { deviceRuleLine, type DeviceRule } from '../security/devices.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { freezeV1, thawV1, v1FreezerState, type FreezerState } from '../freezer/freezer.js';
import type { Layout } from './detect.js';
import { gatherFacts } from './host.js';
import { hugetlbReadFiles } from './hugetlb.js';
import { parseV1Limits, v1Files, type Limits } from './limits.js';
import { deviceNames, deviceNumbers, limitProblems, mountNetFix, problemError, type HostFacts, type LimitProblem } from './support.js';
import { THROTTLES } from './throttle.js';
import { enableV2Controllers, v2Ancestors } from './v2control.js';
import type { BackendOptions, CgroupManager, CgroupStats, MemoryEvents } from './manager.js';
import {
  checkPid, isDir, mkdirIdempotent, parseKeyValues, parsePidList, readCgroupFile, readCgroupFileOpt,
  definedOnly, numberOf, removeCgroupDir, safeJoin, signalPids, writeCgroupFile,
} from './fsutil.js';

/** v1 controllers we place the container in, when mounted. */
export const V1_USED_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'freezer', 'blkio', 'pids'] as const;
/** Without these the v1 backend refuses to work. */
export const V1_REQUIRED_CONTROLLERS = ['memory', 'cpu', 'pids', 'freezer'] as const;

interface Hier { mount: string; dir: string }

const HUGETLB_FIX = 'use a kernel with CONFIG_CGROUP_HUGETLB, or drop --hugetlb-limit';

export class V1Manager implements CgroupManager {
  readonly kind = 'v1' as const;
  readonly paths: Record<string, string> = {};
  /** Unique hierarchies (co-mounted controllers such as cpu,cpuacct share one). */
  private readonly hiers: Hier[] = [];
  /** Where huge page limits go: the v1 hugetlb hierarchy, or cgroup2 where a hybrid host keeps hugetlb. */
  private readonly hugetlbOn: 'v1' | 'unified' | undefined;
  /** The unified hierarchy's mount and the parent's dirs in it (hugetlb is enabled down them). */
  private readonly unifiedAncestors: string[] = [];

  constructor(layout: Layout, parent: string, name: string, private readonly o: BackendOptions, useUnified: boolean) {
    for (const c of V1_REQUIRED_CONTROLLERS) {
      if (!layout.v1.has(c)) {
        throw new TsmError('ECGROUP_MISSING', `cgroup controller ${c} is not mounted`, {
          fix: `mount it (mount -t cgroup -o ${c} cgroup ${path.join(layout.root, c)}) or boot with cgroup v2`,
        });
      }
    }
    const add = (key: string, mount: string) => {
      const dir = safeJoin(mount, parent, name);
      this.paths[key] = dir;
      if (!this.hiers.some((h) => h.dir === dir)) this.hiers.push({ mount, dir });
    };
    // every mounted hierarchy (devices, hugetlb, net_cls, name=systemd, ...), so that the
    // container's tasks sit at one path everywhere and CRIU's --cgroup-root can re-root them all
    for (const c of V1_USED_CONTROLLERS) {
      const mount = layout.v1.get(c);
      if (mount !== undefined) add(c, mount);
    }
    for (const [c, mount] of [...layout.v1.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      if (!(c in this.paths)) add(c, mount);
    }
    if (useUnified && layout.v2Mount !== undefined) {
      add('unified', layout.v2Mount);
      this.unifiedAncestors = v2Ancestors(layout.v2Mount, parent);
    }
    this.hugetlbOn = this.paths['hugetlb'] ? 'v1' : this.paths['unified'] && layout.v2Controllers.includes('hugetlb') ? 'unified' : undefined;
  }

  /** Why a subsystem cannot be used here (the ones `limits` do not use are not probed). */
  private async unavailable(): Promise<HostFacts['unavailable']> {
    const u: HostFacts['unavailable'] = {};
    if (!this.hugetlbOn) u.hugetlb = { reason: 'the hugetlb controller is neither mounted (v1) nor offered by cgroup2', fix: HUGETLB_FIX };
    for (const [c, flag] of [['net_cls', '--net-cls-classid'], ['net_prio', '--net-prio']] as const) {
      if (!this.paths[c]) u[c] = { reason: `the ${c} cgroup controller is not mounted`, fix: mountNetFix(flag) };
    }
    const blkio = this.hiers.find((h) => h.dir === this.paths['blkio'])?.mount;
    if (!blkio) u.throttle = { reason: 'the blkio cgroup controller is not mounted', fix: 'mount it (mount -t cgroup -o blkio cgroup /sys/fs/cgroup/blkio), or drop the throttles' };
    else if (!(await fileExists(path.join(blkio, THROTTLES[0]!.v1File)))) {
      u.throttle = { reason: 'the kernel has no block I/O throttling (no blkio.throttle.* files)', fix: 'use a kernel with CONFIG_BLK_DEV_THROTTLING, or drop the throttles' };
    }
    return u;
  }

  private async facts(limits: Limits): Promise<HostFacts> {
    return gatherFacts(limits, this.o.probe, await this.unavailable());
  }

  async check(limits: Limits, where?: string): Promise<LimitProblem[]> {
    return limitProblems(limits, await this.facts(limits), where);
  }

  private dirOf(controller: string, forFile: string): string {
    const dir = this.paths[controller];
    if (dir === undefined) {
      throw new TsmError('ECGROUP_MISSING', `cgroup controller ${controller} is not mounted (needed for ${forFile})`, {
        fix: `mount it (mount -t cgroup -o ${controller} cgroup /sys/fs/cgroup/${controller}) or drop that limit`,
      });
    }
    return dir;
  }

  async create(): Promise<void> {
    const cpusetDir = this.paths['cpuset'];
    for (const h of this.hiers) {
      const rel = path.relative(h.mount, h.dir).split('/');
      let cur = h.mount;
      for (const seg of rel) {
        const parentDir = cur;
        cur = path.join(cur, seg);
        await mkdirIdempotent(cur);
        // A new v1 cpuset child starts with empty cpus/mems and refuses tasks until set.
        if (h.dir === cpusetDir) await copyCpusetFromParent(parentDir, cur);
      }
    }
  }

  async apply(limits: Limits): Promise<void> {
    const facts = await this.facts(limits);
    const problems = limitProblems(limits, facts);
    if (problems[0]) throw problemError(problems[0]);
    let mems = '0';
    if (limits.cpusetCpus !== undefined) {
      const parentDir = path.dirname(this.dirOf('cpuset', 'cpuset.cpus'));
      mems = (await readCgroupFileOpt(parentDir, 'cpuset.mems')) || '0';
    }
    const files = v1Files(limits, { mems, devices: deviceNumbers(facts), ...(this.hugetlbOn ? { hugetlbOn: this.hugetlbOn } : {}) });
    if (files.some((f) => f.controller === 'unified')) {
      for (const dir of this.unifiedAncestors) await enableV2Controllers(dir, ['hugetlb'], this.o.logger);
    }
    for (const { controller, file, value, optional } of files) {
      const dir = this.dirOf(controller, file);
      if (optional && !(await fileExists(path.join(dir, file)))) continue;
      await writeCgroupFile(dir, file === 'blkio.weight' ? await blkioWeightFile(dir) : file, value);
    }
  }

  async applyDevices(rules: readonly DeviceRule[]): Promise<void> {
    const dir = this.dirOf('devices', 'devices.allow');
    // deny all first, then allow each rule: the cgroup is never wider than the rules in between
    await writeCgroupFile(dir, 'devices.deny', 'a');
    for (const r of rules) await writeCgroupFile(dir, 'devices.allow', deviceRuleLine(r));
  }

  async addProcess(pid: number): Promise<void> {
    checkPid(pid);
    for (const h of this.hiers) await writeCgroupFile(h.dir, 'cgroup.procs', String(pid));
  }

  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const h of this.hiers) {
      const text = await readCgroupFileOpt(h.dir, 'cgroup.procs');
      for (const p of parsePidList(text ?? '')) all.add(p);
    }
    return [...all].sort((a, b) => a - b);
  }

  private freezeOpts(timeoutMs?: number) {
    return { timeoutMs, pollMs: this.o.freezePollMs, io: this.o.freezerIO };
  }

  async freeze(timeoutMs?: number): Promise<void> {
    await freezeV1(this.freezerPath(), this.freezeOpts(timeoutMs));
  }

  async thaw(timeoutMs?: number): Promise<void> {
    await thawV1(this.freezerPath(), this.freezeOpts(timeoutMs));
  }

  async freezerState(): Promise<FreezerState> {
    return v1FreezerState(this.freezerPath(), this.o.freezerIO);
  }

  async stats(): Promise<CgroupStats> {
    const s: CgroupStats = {};
    const read = async (c: string, f: string) => (this.paths[c] ? readCgroupFileOpt(this.paths[c]!, f) : undefined);
    const mem = await read('memory', 'memory.usage_in_bytes');
    if (mem !== undefined) s.memoryBytes = Number(mem);
    const p = await read('pids', 'pids.current');
    if (p !== undefined) s.pids = Number(p);
    const cpu = await read('cpuacct', 'cpuacct.usage');
    if (cpu !== undefined) s.cpuUsageNs = Number(cpu);
    const oom = parseKeyValues((await read('memory', 'memory.oom_control')) ?? '').get('oom_kill');
    if (oom !== undefined) s.oomKills = Number(oom);
    return s;
  }

  async readLimits(known: Limits = {}): Promise<Limits> {
    const files: Record<string, string | undefined> = {};
    const want: Array<[string, string]> = [
      ['memory', 'memory.limit_in_bytes'], ['memory', 'memory.soft_limit_in_bytes'],
      ['cpu', 'cpu.cfs_quota_us'], ['cpu', 'cpu.cfs_period_us'], ['cpu', 'cpu.shares'],
      ['cpuset', 'cpuset.cpus'], ['pids', 'pids.max'], ['blkio', 'blkio.weight'], ['blkio', 'blkio.bfq.weight'],
      ['net_cls', 'net_cls.classid'], ['net_prio', 'net_prio.ifpriomap'],
      ...THROTTLES.map((k): [string, string] => ['blkio', k.v1File]),
    ];
    if (this.hugetlbOn) {
      const version = this.hugetlbOn === 'v1' ? 'v1' : 'v2';
      const key = this.hugetlbOn === 'v1' ? 'hugetlb' : 'unified';
      for (const f of hugetlbReadFiles(await this.o.probe.hugepageSizes(), version)) want.push([key, f]);
    }
    for (const [c, f] of want) {
      const dir = this.paths[c];
      if (dir !== undefined) files[f] = await readCgroupFileOpt(dir, f);
    }
    const cpuset = this.paths['cpuset'];
    const parentCpus = cpuset ? await readCgroupFileOpt(path.dirname(cpuset), 'cpuset.cpus') : undefined;
    const names = deviceNames(await gatherFacts(known, this.o.probe, {}));
    return parseV1Limits(files, { deviceNames: names, ...(parentCpus === undefined ? {} : { parentCpus }) });
  }

  freezerPath(): string {
    return this.paths['freezer']!;
  }

  async killAll(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!(await this.exists())) return;
    const unified = this.paths['unified'];
    if (signal === 'SIGKILL' && unified && (await fs.stat(path.join(unified, 'cgroup.kill')).then(() => true, () => false))) {
      await writeCgroupFile(unified, 'cgroup.kill', '1');
    }
    // As runc: freeze so nothing forks while we signal, then thaw
    // (a frozen v1 task only dies from SIGKILL once it runs again).
    const prev = await this.freezerState().catch(() => 'thawed' as const);
    let froze = false;
    if (prev !== 'frozen') {
      froze = await this.freeze().then(() => true, (e: Error) => {
        this.o.logger.warn(`killAll: cannot freeze before signalling: ${e.message}`);
        return false;
      });
    }
    try {
      signalPids(await this.pids(), signal);
    } finally {
      if (froze) await this.thaw();
      else if (signal === 'SIGKILL') await this.thaw().catch((e: Error) => this.o.logger.warn(`killAll: cannot thaw: ${e.message}`));
    }
  }

  async destroy(): Promise<void> {
    const deadline = Date.now() + this.o.destroyTimeoutMs;
    let first: unknown;
    for (const h of this.hiers) {
      try {
        await removeCgroupDir(h.dir, deadline);
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }

  async exists(): Promise<boolean> {
    for (const h of this.hiers) if (await isDir(h.dir)) return true;
    return false;
  }

  async memoryEvents(): Promise<MemoryEvents> {
    const dir = this.paths['memory'];
    if (dir === undefined) return {};
    // v1 has no memory.events: kernels since 4.13 put the kill count in memory.oom_control
    const oomKills = numberOf(parseKeyValues((await readCgroupFileOpt(dir, 'memory.oom_control')) ?? '').get('oom_kill'));
    const limitHits = numberOf(await readCgroupFileOpt(dir, 'memory.failcnt'));
    const peakBytes = numberOf(await readCgroupFileOpt(dir, 'memory.max_usage_in_bytes'));
    return definedOnly<MemoryEvents>({ oomKills, limitHits, peakBytes });
  }

  oomKillFile(): string | undefined {
    const dir = this.paths['memory'];
    return dir === undefined ? undefined : path.join(dir, 'memory.oom_control');
  }
}

async function copyCpusetFromParent(parentDir: string, dir: string): Promise<void> {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const mine = await readCgroupFileOpt(dir, f);
    if (mine) continue;
    const fromParent = await readCgroupFile(parentDir, f);
    if (fromParent) await writeCgroupFile(dir, f, fromParent);
  }
}

const fileExists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);

/** CFQ's blkio.weight, or BFQ's blkio.bfq.weight on blk-mq kernels without CFQ. */
async function blkioWeightFile(dir: string): Promise<string> {
  for (const f of ['blkio.weight', 'blkio.bfq.weight']) {
    if (await fileExists(path.join(dir, f))) return f;
  }
  throw new TsmError('ECGROUP_MISSING', `blkio weight is not supported in ${dir} (no blkio.weight or blkio.bfq.weight)`, {
    fix: 'enable CONFIG_BFQ_GROUP_IOSCHED (or CFQ) in the kernel, or drop the I/O weight',
  });
}
