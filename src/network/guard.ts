/**
 * Network safety guard: traffic may only go to loopback or to addresses
 * behind our own bridge. Call assertLocalRoute before any connect in tests
 * (and anywhere else we connect to a container address).
 */
import { TsmError } from '../errors/errors.js';
import { contains, parseIPv4, tryParseCidr } from './cidr.js';
import { ip, parseIpJson } from './exec.js';

export interface RouteGet {
  type?: string;
  dst?: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
}

const LOOPBACK = tryParseCidr('127.0.0.0/8')!;

/** `ip route get ADDR` as JSON (the kernel's actual route choice; sends nothing). */
export async function routeGet(addr: string): Promise<RouteGet> {
  const out = await ip(['-j', 'route', 'get', addr], 'check the address and the host routing table');
  const r = parseIpJson<RouteGet>(out)[0];
  if (!r) throw new TsmError('ENETWORK', `ip route get ${addr} returned nothing`, { fix: 'check the host routing table' });
  return r;
}

/**
 * Throw unless `addr` is loopback (127.0.0.0/8, routed via lo) or is routed
 * directly (no gateway) out of `bridge`. Returns the route for logging.
 */
export async function assertLocalRoute(addr: string, bridge: string): Promise<RouteGet> {
  const n = parseIPv4(addr);
  if (n === undefined) {
    throw new TsmError('EINVAL_ARG', `'${addr}' is not an IPv4 address`, { fix: 'pass a dotted-quad address' });
  }
  const r = await routeGet(addr);
  if (contains(LOOPBACK, n)) {
    if (r.dev === 'lo') return r;
  } else if (r.dev === bridge && r.gateway === undefined && r.type !== 'local') {
    return r;
  }
  const via = `dev ${r.dev ?? '?'}${r.gateway ? ` via ${r.gateway}` : ''}${r.type ? ` (${r.type})` : ''}`;
  throw new TsmError('ENETWORK', `refusing to send traffic to ${addr}: its route is ${via}, not loopback or bridge ${bridge}`, {
    fix: 'connect only to 127.0.0.0/8 or to container addresses on the tsmigrate bridge',
  });
}
