import { TsmError } from '../errors/errors.js';
import { checkStoreRoots, type StoreRoots } from '../store/store-dirs.js';
import { isRole, resolveRoles, ROLES, type Role } from './roles.js';

/**
 * What this host's agent serves (pure): the config's `agent:` section and the
 * agent's own argv (an authorized_keys forced command), never the client.
 *
 *   agent:
 *     roles: [migrate, store, restore]   # the ceiling and the default (default: all three)
 *     storeDirs: [/srv/tsmigrate]         # stores only beneath these
 */
export interface AgentSettings {
  roles?: Role[];
  storeDirs?: string[];
}

export interface AgentAccess {
  roles: Role[];
  storeRoots: StoreRoots;
}

/** The config's `agent:` value (already YAML-parsed); throws a plain message for the config parser to place. */
export function parseAgentSettings(v: unknown): AgentSettings {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error('agent must be a mapping with roles: and storeDirs:');
  const out: AgentSettings = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'roles') {
      if (!Array.isArray(val) || !val.every((r): r is Role => typeof r === 'string' && isRole(r))) {
        throw new Error(`agent.roles must be a list of ${ROLES.join(', ')}`);
      }
      out.roles = ROLES.filter((r) => val.includes(r));
    } else if (k === 'storeDirs') {
      if (!Array.isArray(val) || !val.every((d): d is string => typeof d === 'string' && d !== '')) throw new Error('agent.storeDirs must be a list of absolute directories');
      out.storeDirs = val;
    } else {
      throw new Error(`unknown key ${JSON.stringify(k.slice(0, 40))} in agent (use roles, storeDirs)`);
    }
  }
  return out;
}

/**
 * The connection's roles and store directories. `--role` narrows the config's
 * roles; `--store-dir` narrows its store directories (each must lie in one).
 * Where roles were narrowed at all and include `store`, store directories are
 * required: a restricted key never gets stores anywhere. With nothing
 * configured, every role and any store path but the system's (a key without
 * a forced command is a root shell on the host anyway).
 */
export function agentAccess(argv: { roles?: readonly string[]; storeDirs?: readonly string[] }, cfg: AgentSettings, where: string): AgentAccess {
  const roles = resolveRoles(argv.roles ?? [], cfg.roles);
  const configured = cfg.storeDirs ? checkStoreRoots(cfg.storeDirs, where) : undefined;
  let storeRoots: StoreRoots;
  if (argv.storeDirs?.length) {
    const asked = checkStoreRoots(argv.storeDirs, '--store-dir');
    for (const d of asked) {
      if (configured && !configured.some((r) => d === r || d.startsWith(`${r}/`))) {
        throw new TsmError('EFORBIDDEN', `--store-dir ${d} is outside the store directories of this host's config (${configured.join(', ')})`, {
          fix: 'give a directory beneath agent.storeDirs, or add it there',
        });
      }
    }
    storeRoots = asked;
  } else if (configured) {
    storeRoots = configured;
  } else if (!roles.includes('store')) {
    storeRoots = [];
  } else if (argv.roles?.length || cfg.roles) {
    throw new TsmError('ECONFIG', 'the agent serves the store role to a restricted key, but no store directory is configured', {
      fix: 'add --store-dir DIR to the forced command, or agent.storeDirs to the config; see docs/ROLES.md',
    });
  } else {
    storeRoots = 'any';
  }
  return { roles, storeRoots };
}
