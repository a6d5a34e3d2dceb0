import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { StatePaths } from '../state/paths.js';
import { readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import { validateName } from '../util/name.js';
import { parseCron } from './cron.js';
import type { ScheduleTiming } from './due.js';
import { parseInterval } from './interval.js';
import { validatePolicy, type RetentionPolicy } from './retention.js';

/** A scheduled checkpoint of one container (one schedule per container). Kept in <root>/schedules.json. */
export interface Schedule {
  container: string;
  every: string | null;
  cron: string | null;
  keep: RetentionPolicy;
  /** --store value (null: this host's local store) */
  store: string | null;
  encryptKey: string | null;
  tcpEstablished: boolean;
  createdAt: string;
}

export function timingOf(s: Schedule): ScheduleTiming {
  if (s.every) return { kind: 'every', everyMs: parseInterval(s.every) };
  if (s.cron) return { kind: 'cron', spec: parseCron(s.cron) };
  throw new TsmError('ECONFIG', `schedule of ${s.container} has neither every nor cron`, { fix: `remove it (tsmigrate schedule rm ${s.container}) and add it again` });
}

/** Validate a new schedule (pure): throws one clear error for the first problem. */
export function checkSchedule(s: Schedule): Schedule {
  validateName('container', s.container);
  if ((s.every === null) === (s.cron === null)) {
    throw new TsmError('EINVAL_ARG', s.every ? '--every and --cron contradict each other' : 'when should it run?', { fix: 'give exactly one of --every 15m or --cron "EXPR"' });
  }
  timingOf(s);
  validatePolicy(s.keep);
  return s;
}

export class ScheduleBook {
  private readonly file: string;
  private readonly lockDir: string;
  constructor(paths: StatePaths) {
    this.file = path.join(paths.root, 'schedules.json');
    this.lockDir = path.join(paths.root, 'locks', 'schedules');
  }
  async list(): Promise<Schedule[]> {
    const all = (await readJsonIfExists<{ schedules: Schedule[] }>(this.file))?.schedules ?? [];
    return all.sort((a, b) => a.container.localeCompare(b.container));
  }
  async add(s: Schedule): Promise<void> {
    checkSchedule(s);
    await withLock(this.lockDir, 'the schedules', async () => {
      const all = await this.list();
      if (all.some((x) => x.container === s.container)) {
        throw new TsmError('EEXIST_CONTAINER', `container "${s.container}" already has a schedule`, { fix: `remove it first: tsmigrate schedule rm ${s.container}` });
      }
      await writeJsonAtomic(this.file, { schedules: [...all, s] }, 0o600);
    });
  }
  async remove(container: string): Promise<Schedule> {
    return withLock(this.lockDir, 'the schedules', async () => {
      const all = await this.list();
      const s = all.find((x) => x.container === container);
      if (!s) throw new TsmError('EINVAL_ARG', `container "${container}" has no schedule`, { fix: 'list them with tsmigrate schedule ls' });
      await writeJsonAtomic(this.file, { schedules: all.filter((x) => x !== s) }, 0o600);
      return s;
    });
  }
}
