/**
 * A container's history on disk, beside its records: the log the supervisor
 * writes (container.log, rotated by size into container.log.1 ... as docker's
 * json-file driver does; native/shim/logfile.c) and its OOM record (oom.json,
 * native/shim/oom.c). These outlive a restore in place and travel with a move.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ContainerConfig, LogPolicy } from './types.js';

export const LOG_FILE = 'container.log';
export const OOM_FILE = 'oom.json';
/** 10 MiB per file, the current one and one rotated: at most 20 MiB per container */
export const DEFAULT_LOG_POLICY: LogPolicy = { maxBytes: 10 * 1024 * 1024, maxFiles: 2 };
export const MIN_LOG_BYTES = 4096;
export const MAX_LOG_FILES = 100;
/** oom.json is one short line; anything longer is not one the supervisor wrote */
export const MAX_OOM_RECORD_BYTES = 4096;

/** The policy a container's supervisor applies (configs from before rotation get the default). */
export function logPolicyOf(c: Pick<ContainerConfig, 'log'>): LogPolicy {
  return c.log ?? DEFAULT_LOG_POLICY;
}

/** container.log for 0, container.log.N for the file rotated N times ago */
export function logFileName(index: number): string {
  return index === 0 ? LOG_FILE : `${LOG_FILE}.${index}`;
}

/** The inverse of logFileName; undefined for any other name. */
export function logIndexOf(name: string): number | undefined {
  const m = /^container\.log(?:\.([1-9]\d{0,2}))?$/.exec(name);
  return m ? Number(m[1] ?? 0) : undefined;
}

/** The files that are the container's history: its log files and its OOM record. */
export function isHistoryFile(name: string): boolean {
  return name === OOM_FILE || logIndexOf(name) !== undefined;
}

export interface FileFact {
  name: string;
  ino: number;
  size: number;
}

/** Oldest first: container.log.N ... container.log.1, container.log; other files after them. */
export function byAge(a: FileFact, b: FileFact): number {
  const ia = logIndexOf(a.name) ?? -1;
  const ib = logIndexOf(b.name) ?? -1;
  return ib - ia || a.name.localeCompare(b.name);
}

/** The log files in dir, oldest first. */
export async function listLogFiles(dir: string): Promise<FileFact[]> {
  const out: FileFact[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (logIndexOf(name) === undefined) continue;
    const st = await fs.lstat(path.join(dir, name)).catch(() => undefined);
    if (st?.isFile()) out.push({ name, ino: st.ino, size: st.size });
  }
  return out.sort(byAge);
}

/** Move the history files of container dir `from` into `to` (one filesystem). */
export async function moveHistory(from: string, to: string): Promise<void> {
  for (const name of await fs.readdir(from).catch(() => [] as string[])) {
    if (isHistoryFile(name)) await fs.rename(path.join(from, name), path.join(to, name));
  }
}
