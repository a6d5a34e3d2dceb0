import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { loadHostsConfig } from '../hosts/config.js';
import { sshPeer } from '../move/connect.js';
import type { Runtime } from '../runtime/context.js';
import type { StoreBackend } from './backend.js';
import { ChunkStore } from './chunk-store.js';
import { indexSeenIn } from './index-seen.js';
import { loadKeyFile } from './keys.js';
import { LocalBackend } from './local-backend.js';
import { RemoteBackend } from './remote-backend.js';

export interface StoreSpecOptions {
  /** --store: absent or "local" (this host's default store), /PATH, HOST:/PATH, or a store NAME from the config */
  spec?: string | undefined;
  encryptKey?: string | undefined;
  configFile: string;
  create: boolean;
  signal?: AbortSignal;
}

export type StoreTarget = { kind: 'local'; dir: string; label: string } | { kind: 'remote'; host: string; dir: string } | { kind: 'named'; name: string };

const REMOTE = /^([a-z0-9][a-z0-9_.-]{0,62}):(\/.*)$/;

/** Parse a --store value (pure). */
export function parseStoreSpec(spec: string | undefined, root: string): StoreTarget {
  if (spec === undefined || spec === 'local') return { kind: 'local', dir: path.join(root, 'store'), label: 'local' };
  if (spec.startsWith('/')) return { kind: 'local', dir: spec.replace(/\/+$/, '') || '/', label: spec };
  const m = REMOTE.exec(spec);
  if (m) return { kind: 'remote', host: m[1]!, dir: m[2]! };
  if (/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(spec)) return { kind: 'named', name: spec };
  throw new TsmError('EINVAL_ARG', `invalid --store "${spec}"`, { fix: 'give /PATH, HOST:/PATH, a store name from the config, or local' });
}

/** Open the store a --store value names (connecting over SSH for a remote one). */
export async function openStore(rt: Runtime, o: StoreSpecOptions): Promise<ChunkStore> {
  let target = parseStoreSpec(o.spec, rt.paths.root);
  let keyFile = o.encryptKey;
  if (target.kind === 'named') {
    const cfg = await loadHostsConfig(o.configFile);
    const name = target.name;
    const entry = cfg.stores.find((s) => s.name === name);
    if (!entry) {
      const known = cfg.stores.map((s) => s.name);
      throw new TsmError('EINVAL_ARG', `no store named "${name}" in ${o.configFile}`, {
        fix: known.length ? `use one of: ${known.join(', ')}` : 'add it under stores: in the config, or give /PATH or HOST:/PATH',
      });
    }
    target = parseStoreSpec(entry.location, rt.paths.root);
    keyFile ??= entry.encryptKey ?? undefined;
  }
  const key = keyFile ? await loadKeyFile(keyFile) : null;
  let backend: StoreBackend;
  if (target.kind === 'remote') {
    const conn = await sshPeer(o.configFile, target.host, { ...(o.signal ? { signal: o.signal } : {}), logger: rt.logger })();
    backend = new RemoteBackend(conn.agent, target.dir, target.host, () => conn.close());
  } else if (target.kind === 'local') {
    backend = new LocalBackend(target.dir, target.label);
  } else {
    throw new TsmError('EINTERNAL', 'unresolved store name', { fix: 'report a tsmigrate bug' });
  }
  try {
    return await ChunkStore.open(backend, { create: o.create, key, seen: indexSeenIn(rt.paths.root), signing: rt.signing });
  } catch (e) {
    await backend.close().catch(() => undefined);
    throw e;
  }
}
