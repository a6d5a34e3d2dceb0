/**
 * Pick the cgroup backend for this host:
 *   pure v2 -> V2Manager;  pure v1 -> V1Manager;
 *   hybrid  -> V1Manager for resources and the v1 freezer (what CRIU's
 *              --freeze-cgroup expects), plus a dir in the unified hierarchy.
 * A "hybrid" with only named v1 hierarchies (e.g. name=systemd next to cgroup2)
 * is treated as v2. `prefer` forces a backend when both are possible.
 */
import { TsmError } from '../errors/errors.js';
import { silentLogger, type Logger } from '../util/logger.js';
import type { FreezerIO } from '../freezer/freezer.js';
import { detectLayout, hasV1ResourceControllers, type Layout } from './detect.js';
import { checkCgroupName, safeJoin } from './fsutil.js';
import { realHostProbe, type HostProbe } from './host.js';
import type { BackendOptions, CgroupManager } from './manager.js';
import { V1Manager } from './v1.js';
import { V2Manager } from './v2.js';

export const DEFAULT_CGROUP_PARENT = 'tsmigrate';
export const DEFAULT_DESTROY_TIMEOUT_MS = 3000;

export interface CreateCgroupManagerOptions {
  /** This container's cgroup directory name (one path component). */
  name: string;
  /** Relative parent path under each hierarchy (default 'tsmigrate'; may be nested, 'a/b'). */
  parent?: string;
  /** cgroup root (default /sys/fs/cgroup); used for detection when `layout` is not given. */
  root?: string;
  /** A pre-detected layout (tests pass fakes). */
  layout?: Layout;
  /** Force a backend: 'v2' needs a cgroup2 mount, 'v1' needs v1 controllers. */
  prefer?: 'v1' | 'v2';
  logger?: Logger;
  destroyTimeoutMs?: number;
  freezerIO?: FreezerIO;
  freezePollMs?: number;
  /** Host facts for huge page, throttle and net_prio limits (default: this host's kernel). */
  probe?: HostProbe;
}

export function createCgroupManager(opts: CreateCgroupManagerOptions): CgroupManager {
  const name = checkCgroupName(opts.name);
  const parent = opts.parent ?? DEFAULT_CGROUP_PARENT;
  safeJoin('/', parent); // validate: no '..', absolute or empty components
  const layout = opts.layout ?? detectLayout(opts.root ?? '/sys/fs/cgroup');
  const backend: BackendOptions = {
    logger: opts.logger ?? silentLogger,
    destroyTimeoutMs: opts.destroyTimeoutMs ?? DEFAULT_DESTROY_TIMEOUT_MS,
    probe: opts.probe ?? realHostProbe(),
  };
  if (opts.freezerIO) backend.freezerIO = opts.freezerIO;
  if (opts.freezePollMs !== undefined) backend.freezePollMs = opts.freezePollMs;

  const v1Usable = hasV1ResourceControllers(layout);
  const v2 = (): CgroupManager => {
    if (layout.v2Mount === undefined) {
      throw new TsmError('ECGROUP_MISSING', `cgroup v2 is not mounted under ${layout.root}`, {
        fix: 'boot with systemd.unified_cgroup_hierarchy=1, or do not prefer v2',
      });
    }
    return new V2Manager(layout.v2Mount, parent, name, backend);
  };
  const v1 = (): CgroupManager => {
    if (!v1Usable) {
      throw new TsmError('ECGROUP_MISSING', `no cgroup v1 controllers are mounted under ${layout.root}`, {
        fix: 'use the cgroup v2 backend, or mount the v1 controllers',
      });
    }
    return new V1Manager(layout, parent, name, backend, layout.v2Mount !== undefined);
  };

  if (opts.prefer === 'v2') return v2();
  if (opts.prefer === 'v1') return v1();
  return v1Usable ? v1() : v2();
}
