import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { cgroupParentFor } from '../../src/runtime/context.js';

/**
 * Everything a container could leave behind on the host: cgroup directories in
 * any hierarchy, mounts under the state root, host veths, state directories.
 */
export function leftovers(root: string, name: string): string[] {
  const found: string[] = [];
  const parent = cgroupParentFor(path.resolve(root));
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const candidates = [path.join('/sys/fs/cgroup', h, parent, name), path.join('/sys/fs/cgroup', parent, name)];
    for (const c of candidates) if (existsSync(c)) found.push(`cgroup ${c}`);
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  for (const m of mounts) {
    const target = m.split(' ')[4];
    if (target && target.startsWith(path.join(path.resolve(root), 'containers', name))) found.push(`mount ${target}`);
  }
  if (existsSync(path.join(root, 'containers', name))) found.push(`state ${path.join(root, 'containers', name)}`);
  return [...new Set(found)];
}

export function hostVeths(): string[] {
  const out = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return out.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => n.startsWith('tsm-'));
}

/** Ids of the moves a state root took part in: its outgoing journals and its incoming migration records. */
export function migrationIds(root: string): string[] {
  const ids: string[] = [];
  for (const [dir, ext] of [['outgoing', '.jsonl'], ['incoming', '.json']] as const) {
    const d = path.join(root, 'migrations', dir);
    if (existsSync(d)) for (const f of readdirSync(d)) if (f.endsWith(ext)) ids.push(f.slice(0, -ext.length));
  }
  return [...new Set(ids)];
}

/** Journals (source) and migration records (peer) of a root not in a final phase: "outgoing ID: frozen". */
export function unfinishedMigrations(root: string): string[] {
  const found: string[] = [];
  const out = path.join(root, 'migrations', 'outgoing');
  if (existsSync(out)) {
    for (const f of readdirSync(out).filter((x) => x.endsWith('.jsonl'))) {
      const lines = readFileSync(path.join(out, f), 'utf8').split('\n').filter(Boolean);
      const phase = (JSON.parse(lines.at(-1) ?? '{}') as { phase?: string }).phase;
      if (phase !== 'done' && phase !== 'aborted') found.push(`outgoing ${f.slice(0, -6)}: ${phase}`);
    }
  }
  const inc = path.join(root, 'migrations', 'incoming');
  if (existsSync(inc)) {
    for (const f of readdirSync(inc).filter((x) => x.endsWith('.json'))) {
      const phase = (JSON.parse(readFileSync(path.join(inc, f), 'utf8')) as { phase?: string }).phase;
      if (phase !== 'committed' && phase !== 'aborted') found.push(`incoming ${f.slice(0, -5)}: ${phase}`);
    }
  }
  return found;
}

/** Staging directories (tmpfs or under the root) of the given moves that still exist. */
export function stagingLeftovers(root: string, ids: string[]): string[] {
  const found: string[] = [];
  for (const base of [process.env['TSMIGRATE_STAGING'], '/dev/shm/tsmigrate', path.join(root, 'staging')]) {
    if (!base || !existsSync(base)) continue;
    for (const d of readdirSync(base)) if (ids.some((id) => d.startsWith(`move-${id}-`))) found.push(`staging ${path.join(base, d)}`);
  }
  return found;
}

/** Mounts under the state root other than the rootfs of the containers in `keep`, and CRIU's cgroup yards anywhere under it. */
export function strayMounts(root: string, keep: string[]): string[] {
  const r = path.resolve(root);
  const kept = keep.map((n) => path.join(r, 'containers', n) + path.sep);
  const found: string[] = [];
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const target = m.split(' ')[4];
    if (!target || !(target + path.sep).startsWith(r + path.sep)) continue;
    if (kept.some((k) => (target + path.sep).startsWith(k)) && !target.includes('.criu.cgyard')) continue;
    found.push(`mount ${target}`);
  }
  return [...new Set(found)];
}

/** Cgroup directories under the root's cgroup parent, in any hierarchy, other than those of `keep`. */
export function strayCgroups(root: string, keep: string[]): string[] {
  const parent = cgroupParentFor(path.resolve(root));
  const found: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    for (const dir of [path.join('/sys/fs/cgroup', h, parent), path.join('/sys/fs/cgroup', parent)]) {
      if (!existsSync(dir)) continue;
      for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory() && !keep.includes(e.name)) found.push(`cgroup ${path.join(dir, e.name)}`);
    }
  }
  return [...new Set(found)];
}

/** Processes whose argv names something under the state root (shims, CRIU, agents), other than those naming a container of `keep`. */
export function rootProcesses(root: string, keep: string[] = []): string[] {
  const r = path.resolve(root) + path.sep;
  const kept = keep.map((n) => path.join(r, 'containers', n));
  const found: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    const mentions = argv.filter((a) => a.includes(r) || a === r.slice(0, -1));
    if (mentions.length && !mentions.every((a) => kept.some((k) => a === k || a.startsWith(k + path.sep)))) found.push(`process ${d}: ${argv.join(' ').slice(0, 200)}`);
  }
  return found;
}
