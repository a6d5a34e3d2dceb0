import { TsmError } from '../errors/errors.js';

/**
 * What `warm` may fault in for one migration: the source asks for twice the
 * memory it declared in `begin` (half a tmpfs pool for the images, half memory
 * for the restore; plan.ts), never more. Across all migrations warming here at
 * once, at most twice this host's memory is asked for (WarmMemory stops short of
 * the free memory anyway; the cap keeps a client that begins many moves from
 * pinning it all). Pure.
 */
export const WARM_PER_DECLARED_BYTE = 2;
export const WARM_HOST_MEMORY_FACTOR = 2;

export interface WarmFacts {
  /** bytes the client asks to warm */
  requested: number;
  /** begin's memoryBytes (absent: 0, nothing may be warmed) */
  declaredMemory: number;
  /** bytes held by warm for the other migrations on this peer */
  heldElsewhere: number;
  /** os.totalmem() */
  hostMemory: number;
}

const mib = (n: number) => `${Math.ceil(n / (1 << 20))} MiB`;

export function warmRefusal(f: WarmFacts): TsmError | undefined {
  const allowed = WARM_PER_DECLARED_BYTE * f.declaredMemory;
  if (f.requested > allowed) {
    return new TsmError('EPROTO', `the source asked this peer to warm ${mib(f.requested)}, more than the ${mib(allowed)} its move declared (twice ${mib(f.declaredMemory)} of memory)`, {
      fix: 'nothing was warmed; install the same tsmigrate version on both hosts, or find what else speaks to this agent',
    });
  }
  const cap = WARM_HOST_MEMORY_FACTOR * f.hostMemory;
  if (f.heldElsewhere + f.requested > cap) {
    return new TsmError('EPROTO', `warming ${mib(f.requested)} more (${mib(f.heldElsewhere)} already warm for other moves) would pass this peer's cap of ${mib(cap)}`, {
      fix: 'nothing was warmed; let the other moves to this host finish, or move with --no-warm-memory',
    });
  }
  return undefined;
}
