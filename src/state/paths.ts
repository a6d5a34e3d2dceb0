import path from 'node:path';
import { checkName } from '../util/confined-dir.js';

/** Where everything lives under one state root (default /var/lib/tsmigrate). */
export interface StatePaths {
  readonly root: string;
  readonly images: string;
  readonly containers: string;
  readonly locks: string;
  container(name: string): string;
  image(digest: string): string;
}

export const DEFAULT_ROOT = '/var/lib/tsmigrate';

export function resolveRoot(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag ?? env['TSMIGRATE_ROOT'] ?? DEFAULT_ROOT);
}

export function statePaths(root: string): StatePaths {
  const r = path.resolve(root);
  return {
    root: r,
    images: path.join(r, 'images'),
    containers: path.join(r, 'containers'),
    locks: path.join(r, 'locks'),
    container: (name) => path.join(r, 'containers', checkName(name, 'the containers directory')),
    image: (digest) => path.join(r, 'images', checkName(digest.replace(/^sha256:/, ''), 'the images directory')),
  };
}

