import { releaseRange } from '../userns/ranges.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { readJsonIfExists, writeJsonAtomic } from '../state/atomic.js';
import type { StatePaths } from '../state/paths.js';
import { validateName } from '../util/name.js';
import type { ContainerConfig, ContainerRuntimeState, ExitInfo } from './types.js';

/** Container records on disk: <root>/containers/NAME/{config,state,exit}.json. */
export class ContainerStore {
  constructor(readonly paths: StatePaths) {}

  dir(name: string): string {
    validateName('container', name);
    return this.paths.container(name);
  }
  lockDir(name: string): string {
    return path.join(this.paths.locks, `container-${name}`);
  }

  async exists(name: string): Promise<boolean> {
    return (await readJsonIfExists(path.join(this.dir(name), 'config.json'))) !== undefined;
  }

  async names(): Promise<string[]> {
    const entries = await fs.readdir(this.paths.containers, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  }

  async config(name: string): Promise<ContainerConfig> {
    const c = await readJsonIfExists<ContainerConfig>(path.join(this.dir(name), 'config.json'));
    if (!c) {
      throw new TsmError('ENOENT_CONTAINER', `no container named "${name}"`, { fix: 'list containers with tsmigrate ps' });
    }
    return c;
  }

  async state(name: string): Promise<ContainerRuntimeState> {
    const s = await readJsonIfExists<ContainerRuntimeState>(path.join(this.dir(name), 'state.json'));
    if (!s) throw new TsmError('ENOENT_CONTAINER', `container "${name}" has no state`, { fix: `remove it with tsmigrate rm -f ${name}` });
    return s;
  }

  async exitInfo(name: string): Promise<ExitInfo | undefined> {
    return readJsonIfExists<ExitInfo>(path.join(this.dir(name), 'exit.json'));
  }

  async saveConfig(c: ContainerConfig): Promise<void> {
    await writeJsonAtomic(path.join(this.dir(c.name), 'config.json'), c);
  }
  async saveState(name: string, s: ContainerRuntimeState): Promise<void> {
    await writeJsonAtomic(path.join(this.dir(name), 'state.json'), s);
  }
  async clearExit(name: string): Promise<void> {
    await fs.rm(path.join(this.dir(name), 'exit.json'), { force: true });
  }
  async remove(name: string): Promise<void> {
    await fs.rm(this.dir(name), { recursive: true, force: true });
    await releaseRange(this.paths.root, name);
  }
  /** Digests of images that containers use (for `image rm`). */
  async containersUsingImage(digest: string): Promise<string[]> {
    const out: string[] = [];
    for (const n of await this.names()) {
      const c = await readJsonIfExists<ContainerConfig>(path.join(this.paths.container(n), 'config.json'));
      if (c?.image.digest === digest) out.push(n);
    }
    return out;
  }
}
