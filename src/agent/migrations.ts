import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import type { StatePaths } from '../state/paths.js';
import { peerMayGo, type PeerPhase } from '../move/phases.js';
import type { BeginRequest } from './api.js';
import type { ImageSum } from '../transfer/image-sums.js';

/** The peer's record of a migration it receives (fsynced at every phase). */
export interface IncomingMigration {
  id: string;
  name: string;
  epoch: number;
  phase: PeerPhase;
  begin: BeginRequest;
  /** files: each image's size and sum as it arrived (transfer/image-sums.ts) */
  received: { images?: string; upper: string[]; files?: ImageSum[] };
  staging?: string;
  /** prepared: when the held copy expires if the source has not decided (hold.ts) */
  holdUntil?: string;
  /** aborted: why ('expired': the hold limit passed) */
  reason?: 'expired';
  updatedAt: string;
}

export class MigrationRecords {
  readonly dir: string;
  constructor(private readonly paths: StatePaths) {
    this.dir = path.join(paths.root, 'migrations', 'incoming');
  }
  private file(id: string): string {
    if (!/^[a-z0-9-]{8,64}$/.test(id)) throw new TsmError('EINVAL_ARG', `invalid migration id "${id}"`, { fix: 'use the id tsmigrate printed' });
    return path.join(this.dir, `${id}.json`);
  }
  async get(id: string): Promise<IncomingMigration | undefined> {
    const m = await readJsonIfExists<IncomingMigration>(this.file(id));
    return m && checkRecord(id, m, this.file(id));
  }
  async must(id: string): Promise<IncomingMigration> {
    const m = await this.get(id);
    if (!m) throw new TsmError('EBAD_STATE', `this host knows no migration ${id}`, { fix: 'start the move again' });
    return m;
  }
  /** Written only along the transitions phases.ts lists (the record on disk is the phase it leaves). */
  async save(m: IncomingMigration): Promise<void> {
    const was = await this.get(m.id).catch(() => undefined);
    if (was && was.phase !== m.phase && !peerMayGo(was.phase, m.phase)) {
      throw new TsmError('EBAD_STATE', `migration ${m.id} is ${was.phase} here: it cannot become ${m.phase}`, { fix: 'start a new move (tsmigrate recover on the source settles this one)' });
    }
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    m.updatedAt = new Date().toISOString();
    await writeJsonAtomic(this.file(m.id), m, 0o600);
  }
  async list(): Promise<IncomingMigration[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    const out: IncomingMigration[] = [];
    for (const n of names) if (n.endsWith('.json')) {
      const m = await readJsonIfExists<IncomingMigration>(path.join(this.dir, n)).catch(() => undefined);
      if (m) out.push(m);
    }
    return out;
  }
  /** The highest epoch this host has seen for a container name. */
  async seenEpoch(name: string): Promise<number> {
    const f = path.join(this.paths.root, 'migrations', 'epochs.json');
    const e = (await readJsonIfExists<Record<string, number>>(f)) ?? {};
    return epochOf(e, name);
  }
  async recordEpoch(name: string, epoch: number): Promise<void> {
    const f = path.join(this.paths.root, 'migrations', 'epochs.json');
    await fs.mkdir(path.dirname(f), { recursive: true, mode: 0o700 });
    const e = (await readJsonIfExists<Record<string, number>>(f)) ?? {};
    if (epochOf(e, name) < epoch) {
      e[name] = epoch;
      await writeJsonAtomic(f, e, 0o600);
    }
  }
}

/** A name's epoch: own keys only (a container named "constructor" is not Object's). */
function epochOf(e: Record<string, number>, name: string): number {
  const v = Object.hasOwn(e, name) ? e[name] : 0;
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : 0;
}

/**
 * The paths a record leads the agent to (the container's directory, the staging it
 * removes) must be the ones the agent made for this migration: its own id, a
 * container name, and a staging directory named for the migration (pure).
 */
export function checkRecord(id: string, m: IncomingMigration, file: string): IncomingMigration {
  const bad = (what: string) => new TsmError('EBAD_STATE', `the migration record ${file} is damaged: ${what}`, { fix: 'remove it after checking what it names (tsmigrate recover on the source settles the move)' });
  if (m.id !== id) throw bad(`it names migration ${JSON.stringify(String(m.id).slice(0, 80))}`);
  if (typeof m.name !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(m.name)) throw bad('its container name is not one');
  if (m.staging !== undefined) {
    const s = m.staging;
    if (typeof s !== 'string' || !path.isAbsolute(s) || path.normalize(s) !== s || !path.basename(s).startsWith(`move-${id}-`) || path.dirname(s) === '/') {
      throw bad(`its staging ${JSON.stringify(String(s).slice(0, 200))} is not a staging directory of this migration`);
    }
  }
  return m;
}
