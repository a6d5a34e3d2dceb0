import { promises as fs, constants } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import type { StatePaths } from '../state/paths.js';
import { isFinal, sourceMayGo, type SourcePhase } from './phases.js';

/**
 * The source's journal of a move: one JSON line per phase, fsynced, so that
 * `tsmigrate recover` can finish or undo a move cut off by a crash. Only the
 * transitions phases.ts lists are written.
 */
export type MovePhase = SourcePhase;

export interface JournalEntry {
  phase: MovePhase;
  at: string;
  [k: string]: unknown;
}

export interface MoveRecord {
  id: string;
  name: string;
  host: string;
  epoch: number;
  entries: JournalEntry[];
}

export function journalDir(paths: StatePaths): string {
  return path.join(paths.root, 'migrations', 'outgoing');
}

export class MoveJournal {
  private constructor(readonly file: string, readonly record: MoveRecord) {}

  static async create(paths: StatePaths, id: string, name: string, host: string, epoch: number): Promise<MoveJournal> {
    const dir = journalDir(paths);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const j = new MoveJournal(path.join(dir, `${id}.jsonl`), { id, name, host, epoch, entries: [] });
    await j.append('started', { name, host, epoch });
    return j;
  }

  static async load(file: string): Promise<MoveJournal> {
    const lines = (await fs.readFile(file, 'utf8')).split('\n').filter(Boolean);
    const entries: JournalEntry[] = [];
    for (const l of lines) {
      try {
        entries.push(JSON.parse(l) as JournalEntry);
      } catch {
        break; // a torn last line from a crash: ignore it and what follows
      }
    }
    const first = entries[0] ?? { phase: 'started', at: '' };
    const id = path.basename(file, '.jsonl');
    return new MoveJournal(file, { id, name: String(first['name']), host: String(first['host']), epoch: Number(first['epoch'] ?? 0), entries });
  }

  get phase(): MovePhase {
    return this.record.entries[this.record.entries.length - 1]?.phase ?? 'started';
  }
  has(p: MovePhase): boolean {
    return this.record.entries.some((e) => e.phase === p);
  }

  async append(phase: MovePhase, extra: Record<string, unknown> = {}): Promise<void> {
    if (this.record.entries.length && !sourceMayGo(this.phase, phase)) {
      throw new TsmError('EINTERNAL', `move ${this.record.id}: no transition from ${this.phase} to ${phase}`, { fix: 'report a tsmigrate bug with the journal ' + this.file });
    }
    const e: JournalEntry = { phase, at: new Date().toISOString(), ...extra };
    const fh = await fs.open(this.file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    try {
      await fh.write(JSON.stringify(e) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.record.entries.push(e);
  }
}

export async function unfinishedMoves(paths: StatePaths): Promise<MoveJournal[]> {
  const dir = journalDir(paths);
  const names = await fs.readdir(dir).catch(() => [] as string[]);
  const out: MoveJournal[] = [];
  for (const n of names.filter((x) => x.endsWith('.jsonl')).sort()) {
    const j = await MoveJournal.load(path.join(dir, n));
    if (!isFinal(j.phase)) out.push(j);
  }
  return out;
}
