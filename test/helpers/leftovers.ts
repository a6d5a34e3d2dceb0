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
