/**
 * Freeze/thaw loops for cgroup v1 (freezer.state) and v2 (cgroup.freeze +
 * cgroup.events). Write, then re-read until the kernel confirms, bounded by
 * a timeout. If a freeze does not complete in time the cgroup is thawed again
 * before throwing EFREEZE_TIMEOUT: it is bad and dangerous to leave the cgroup
 * in FROZEN or FREEZING.
 */
import { TsmError } from '../errors/errors.js';
import { readCgroupFile, writeCgroupFile, parseKeyValues, sleep } from '../cgroup/fsutil.js';

export type FreezerState = 'thawed' | 'frozen' | 'freezing';

/** File access used by the loops; tests inject fakes that never confirm. */
export interface FreezerIO {
  read(dir: string, file: string): Promise<string>;
  write(dir: string, file: string, value: string): Promise<void>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export const defaultFreezerIO: FreezerIO = {
  read: readCgroupFile,
  write: (dir, file, value) => writeCgroupFile(dir, file, value),
  sleep,
  now: () => Date.now(),
};

export interface FreezeOptions {
  /** Total bound in ms (default 5000). */
  timeoutMs?: number;
  /** Poll interval in ms (default 5). */
  pollMs?: number;
  io?: FreezerIO;
}

export const DEFAULT_FREEZE_TIMEOUT_MS = 5000;

function opts(o: FreezeOptions): { timeoutMs: number; pollMs: number; io: FreezerIO } {
  const timeoutMs = o.timeoutMs ?? DEFAULT_FREEZE_TIMEOUT_MS;
  if (!(timeoutMs > 0)) {
    throw new TsmError('EINVAL_ARG', `freeze timeout ${timeoutMs} must be a positive number of ms`, { fix: 'pass e.g. 5000' });
  }
  return { timeoutMs, pollMs: Math.max(1, o.pollMs ?? 5), io: o.io ?? defaultFreezerIO };
}

// ---- v2 -----------------------------------------------------------------

export async function v2FreezerState(dir: string, io: FreezerIO = defaultFreezerIO): Promise<FreezerState> {
  const want = (await io.read(dir, 'cgroup.freeze')).trim();
  const frozen = parseKeyValues(await io.read(dir, 'cgroup.events')).get('frozen') === '1';
  if (want === '1') return frozen ? 'frozen' : 'freezing';
  return 'thawed';
}

async function waitV2(dir: string, want: '0' | '1', deadline: number, pollMs: number, io: FreezerIO): Promise<boolean> {
  for (;;) {
    const frozen = parseKeyValues(await io.read(dir, 'cgroup.events')).get('frozen') ?? '0';
    if (frozen === want) return true;
    if (io.now() >= deadline) return false;
    await io.sleep(pollMs);
  }
}

/** v2: write 1 to cgroup.freeze, wait for "frozen 1" in cgroup.events. */
export async function freezeV2(dir: string, o: FreezeOptions = {}): Promise<void> {
  const { timeoutMs, pollMs, io } = opts(o);
  const deadline = io.now() + timeoutMs;
  try {
    await io.write(dir, 'cgroup.freeze', '1');
    if (await waitV2(dir, '1', deadline, pollMs, io)) return;
  } catch (e) {
    await io.write(dir, 'cgroup.freeze', '0').catch(() => {});
    throw e;
  }
  await io.write(dir, 'cgroup.freeze', '0').catch(() => {});
  throw timeoutError(dir, timeoutMs, 'cgroup.events never reported "frozen 1"');
}

/** v2: write 0 to cgroup.freeze, wait for "frozen 0". */
export async function thawV2(dir: string, o: FreezeOptions = {}): Promise<void> {
  const { timeoutMs, pollMs, io } = opts(o);
  const deadline = io.now() + timeoutMs;
  await io.write(dir, 'cgroup.freeze', '0');
  if (await waitV2(dir, '0', deadline, pollMs, io)) return;
  throw thawError(dir, timeoutMs, 'cgroup.events still reports "frozen 1" (is an ancestor frozen?)');
}

// ---- v1 -----------------------------------------------------------------

function v1State(raw: string): FreezerState {
  switch (raw.trim()) {
    case 'FROZEN': return 'frozen';
    case 'FREEZING': return 'freezing';
    case 'THAWED': return 'thawed';
    default:
      throw new TsmError('ECGROUP', `unexpected freezer.state ${JSON.stringify(raw.trim())}`, {
        fix: 'check that the path is a cgroup v1 freezer directory',
      });
  }
}

export async function v1FreezerState(dir: string, io: FreezerIO = defaultFreezerIO): Promise<FreezerState> {
  return v1State(await io.read(dir, 'freezer.state'));
}

/**
 * v1: write FROZEN, re-read until FROZEN. FREEZING can stall (e.g. while new
 * tasks keep appearing), so like runc we rewrite FROZEN on every retry and
 * occasionally thaw briefly and start again, which improves the odds.
 */
export async function freezeV1(dir: string, o: FreezeOptions = {}): Promise<void> {
  const { timeoutMs, pollMs, io } = opts(o);
  const deadline = io.now() + timeoutMs;
  let ok = false;
  try {
    for (let i = 0; ; i++) {
      if (i % 50 === 49) {
        await io.write(dir, 'freezer.state', 'THAWED');
        await io.sleep(Math.max(pollMs, 10));
      }
      await io.write(dir, 'freezer.state', 'FROZEN');
      const st = v1State(await io.read(dir, 'freezer.state'));
      if (st === 'frozen') {
        ok = true;
        return;
      }
      if (io.now() >= deadline) break;
      await io.sleep(pollMs);
    }
  } finally {
    if (!ok) await io.write(dir, 'freezer.state', 'THAWED').catch(() => {});
  }
  throw timeoutError(dir, timeoutMs, 'freezer.state stayed FREEZING');
}

/** v1: write THAWED, re-read until THAWED. */
export async function thawV1(dir: string, o: FreezeOptions = {}): Promise<void> {
  const { timeoutMs, pollMs, io } = opts(o);
  const deadline = io.now() + timeoutMs;
  for (;;) {
    await io.write(dir, 'freezer.state', 'THAWED');
    if (v1State(await io.read(dir, 'freezer.state')) === 'thawed') return;
    if (io.now() >= deadline) break;
    await io.sleep(pollMs);
  }
  throw thawError(dir, timeoutMs, 'freezer.state is not THAWED (is a parent cgroup frozen?)');
}

function timeoutError(dir: string, ms: number, detail: string): TsmError {
  return new TsmError('EFREEZE_TIMEOUT', `cannot freeze ${dir} within ${ms} ms: ${detail}; thawed it again`, {
    fix: 'retry; a task stuck in uninterruptible sleep (D state, e.g. NFS or FUSE I/O) can block freezing',
  });
}

function thawError(dir: string, ms: number, detail: string): TsmError {
  return new TsmError('EFREEZE_TIMEOUT', `cannot thaw ${dir} within ${ms} ms: ${detail}`, {
    fix: 'check the freezer state of parent cgroups and thaw them',
  });
}
