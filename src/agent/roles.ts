import { TsmError } from '../errors/errors.js';
import type { AgentMethod } from './schema.js';

/**
 * What a connecting key may ask of this host's agent. The agent learns its
 * roles from its own argv (`tsmigrate agent --stdio --role store`, written into
 * an authorized_keys forced command) and from the host's config (`agent.roles`),
 * never from the client. Pure: table-tested in test/unit/agent/roles.test.ts.
 *
 * - migrate: receive a moved container (it runs here as root afterwards)
 * - restore: receive a container restored from a store (DR `restore --on`); as
 *   powerful as migrate, without the move-only calls
 * - store:   keep checkpoint stores in the configured store directories
 */
export const ROLES = ['migrate', 'store', 'restore'] as const;
export type Role = (typeof ROLES)[number];

/** Every role: whether the host's container of a name runs (DR asks every configured host), and the greeting. */
const COMMON: readonly AgentMethod[] = ['hello', 'containerStatus'];

/** Receiving a container and deciding its fate: what a move and a DR restore both ask. */
const RECEIVE: readonly AgentMethod[] = ['preflight', 'putImage', 'begin', 'putUpper', 'putImages', 'prepare', 'commit', 'abort', 'status'];

export const ROLE_METHODS: Readonly<Record<Role, readonly AgentMethod[]>> = Object.freeze({
  migrate: [...COMMON, ...RECEIVE, 'putLogs', 'warm', 'probe'],
  restore: [...COMMON, ...RECEIVE],
  store: [
    ...COMMON,
    'storeOpen', 'storeLock', 'storeUnlock', 'storeHas', 'storePutChunks', 'storeGetChunks', 'storeListSnapshots',
    'storeGetSnapshot', 'storePutSnapshot', 'storeDeleteSnapshot', 'storeVerify', 'storeCollect', 'storeStats',
    'storeGetIndex', 'storePutIndex',
  ],
});

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/** The methods a connection with these roles may call. */
export function allowedMethods(roles: readonly Role[]): ReadonlySet<string> {
  return new Set(roles.flatMap((r) => ROLE_METHODS[r]));
}

/** The roles that allow `method` (for the refusal's fix). */
export function rolesFor(method: string): Role[] {
  return ROLES.filter((r) => (ROLE_METHODS[r] as readonly string[]).includes(method));
}

/** One clear refusal for a method outside the connection's roles (checked before its params are read). */
export function roleRefusal(method: string, roles: readonly Role[]): TsmError | undefined {
  if (allowedMethods(roles).has(method)) return undefined;
  const need = rolesFor(method);
  return new TsmError('EFORBIDDEN', `this host's agent serves this key as ${roles.length ? roles.join(', ') : 'nothing'}: ${method} needs the role ${need.join(' or ') || '(none)'}`, {
    fix: need.length
      ? `on the peer, give this key's forced command --role ${need[0]} (authorized_keys) or add ${need[0]} to agent.roles in its config; see docs/ROLES.md`
      : 'install the same tsmigrate version on both hosts',
  });
}

/**
 * The roles of this connection: `--role` (repeatable, or comma-separated) narrows
 * what the host's config allows (`agent.roles`, default every role). A `--role`
 * the config does not allow is an error at start: the host's config is the ceiling.
 */
export function resolveRoles(argv: readonly string[], configured: readonly Role[] | undefined): Role[] {
  const ceiling = configured ?? [...ROLES];
  const asked = argv.flatMap((a) => a.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  for (const a of asked) {
    if (!isRole(a)) throw new TsmError('EINVAL_ARG', `unknown agent role "${a.slice(0, 40)}"`, { fix: `use ${ROLES.join(', ')}` });
    if (!ceiling.includes(a)) {
      throw new TsmError('EFORBIDDEN', `--role ${a} is not allowed by this host's config (agent.roles: ${ceiling.join(', ') || 'none'})`, {
        fix: `add ${a} to agent.roles in the config, or leave --role ${a} out of the forced command`,
      });
    }
  }
  const chosen = asked.length ? asked.filter(isRole) : ceiling;
  return ROLES.filter((r) => chosen.includes(r));
}
