/**
 * cgroup v2 backend: one directory <mount>/<parent>/<name> in the unified hierarchy.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { attachDeviceFilter } from './device-filter.js';
import type { DeviceRule } from '../security/devices.js';
import { TsmError } from '../errors/errors.js';
import { freezeV2, thawV2, v2FreezerState, type FreezerState } from '../freezer/freezer.js';
import { parseV2Limits, v2Files, type Limits } from './limits.js';
import type { BackendOptions, CgroupManager, CgroupStats } from './manager.js';
import {
  checkPid, isDir, mkdirIdempotent, parseKeyValues, parsePidList, readCgroupFile, readCgroupFileOpt,
  removeCgroupDir, safeJoin, signalPids, writeCgroupFile,
} from './fsutil.js';

/** Controllers we enable in every ancestor's cgroup.subtree_control (where available). */
export const V2_WANTED_CONTROLLERS = ['memory', 'cpu', 'cpuset', 'pids', 'io'] as const;

const LIMIT_FILES = ['memory.max', 'memory.low', 'cpu.max', 'cpu.weight', 'cpuset.cpus', 'pids.max', 'io.weight'];

const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter(Boolean);

export class V2Manager implements CgroupManager {
  readonly kind = 'v2' as const;
  readonly paths: Record<string, string>;
  private readonly dir: string;
  private readonly ancestors: string[];

  constructor(private readonly mount: string, parent: string, name: string, private readonly o: BackendOptions) {
    this.dir = safeJoin(mount, parent, name);
    this.paths = { unified: this.dir };
    const segs = parent.split('/');
    this.ancestors = [mount, ...segs.map((_, i) => safeJoin(mount, segs.slice(0, i + 1).join('/')))];
  }

  async create(): Promise<void> {
    for (const [i, dir] of this.ancestors.entries()) {
      if (i > 0) await mkdirIdempotent(dir);
      await this.enableControllers(dir);
    }
    await mkdirIdempotent(this.dir);
  }

  /**
   * Enable the wanted controllers in dir's cgroup.subtree_control where available:
   * one write for all of them, or one at a time if that fails.
   */
  private async enableControllers(dir: string): Promise<void> {
    const available = new Set(words(await readCgroupFileOpt(dir, 'cgroup.controllers')));
    const enabled = new Set(words(await readCgroupFileOpt(dir, 'cgroup.subtree_control')));
    const todo = V2_WANTED_CONTROLLERS.filter((c) => available.has(c) && !enabled.has(c));
    if (todo.length === 0) return;
    try {
      await writeCgroupFile(dir, 'cgroup.subtree_control', todo.map((c) => `+${c}`).join(' '));
      return;
    } catch {
      // fall through: find out which one the kernel refuses
    }
    for (const c of todo) {
      try {
        await writeCgroupFile(dir, 'cgroup.subtree_control', `+${c}`);
      } catch (e) {
        // e.g. EBUSY: the cgroup has processes of its own ("no internal processes" rule).
        this.o.logger.warn(`cannot enable the ${c} controller in ${dir}: ${(e as Error).message}`);
      }
    }
  }

  async apply(limits: Limits): Promise<void> {
    const needsMems = limits.cpusetCpus !== undefined;
    const mems = needsMems ? (await readCgroupFileOpt(path.dirname(this.dir), 'cpuset.mems.effective')) || '0' : '0';
    const files = v2Files(limits, { mems });
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
    for (const { file, value } of files) await writeCgroupFile(this.dir, file, value);
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

  async readLimits(): Promise<Limits> {
    const files: Record<string, string | undefined> = {};
    for (const f of LIMIT_FILES) files[f] = await readCgroupFileOpt(this.dir, f);
    return parseV2Limits(files);
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
}
