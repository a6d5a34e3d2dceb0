/**
 * OOM kills of a container: the supervisor's record (oom.json, written by
 * native/shim/oom.c when it sees the cgroup's counter rise: the total, kills
 * before a restore or move included, and when it saw the last one), and what
 * ps and inspect make of it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MAX_OOM_RECORD_BYTES, OOM_FILE } from './log-files.js';
import type { ExitInfo } from './types.js';

export interface OomRecord {
  oomKills: number;
  lastOomKillAt: string;
}

/** The record in a container dir; undefined if there is none or it is not one the supervisor wrote. */
export async function readOomRecord(dir: string): Promise<OomRecord | undefined> {
  const text = await fs.readFile(path.join(dir, OOM_FILE), 'utf8').catch(() => undefined);
  if (text === undefined || text.length > MAX_OOM_RECORD_BYTES) return undefined;
  try {
    const r = JSON.parse(text) as Partial<OomRecord>;
    if (Number.isSafeInteger(r.oomKills) && r.oomKills! >= 0 && typeof r.lastOomKillAt === 'string' && !Number.isNaN(Date.parse(r.lastOomKillAt))) {
      return { oomKills: r.oomKills!, lastOomKillAt: r.lastOomKillAt };
    }
  } catch {
    /* not JSON */
  }
  return undefined;
}

export interface OomReport {
  /** OOM kills in the container over its life (across restores and moves) */
  oomKills: number;
  /** when the supervisor saw the last one; null if none, or counted without a supervisor watching */
  lastOomKillAt: string | null;
  /** the container ended within a second of an OOM kill (its init, or a task it died of) */
  oomKilled: boolean;
}

/**
 * Pure: the supervisor's record first; without one (no kill yet, or a container started by a
 * supervisor that did not keep one) the cgroup's own count, which has no time.
 */
export function oomReport(record: OomRecord | undefined, cgroupKills: number | undefined, exit: ExitInfo | undefined): OomReport {
  return {
    oomKills: record?.oomKills ?? cgroupKills ?? 0,
    lastOomKillAt: record?.lastOomKillAt ?? null,
    oomKilled: exit?.oomKilled === true,
  };
}
