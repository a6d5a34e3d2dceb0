/**
 * The wire schema of the agent: a validator for the params and the result of
 * every AgentApi method (agentSpec), checked by the compiler against the
 * interface in ./api.ts and at run time on both ends of the connection.
 */
import type { Readable } from 'node:stream';
import { pageSizeName, parsePageSize, type HugetlbLimit } from '../cgroup/hugetlb.js';
import type { Limits } from '../cgroup/limits.js';
import type { NetPrio } from '../cgroup/netclass.js';
import type { DeviceRate } from '../cgroup/throttle.js';
import { MAX_LOG_FILES, MIN_LOG_BYTES } from '../container/log-files.js';
import type { ContainerConfig, LogPolicy } from '../container/types.js';
import type { LeaseOwner } from '../network/ipam.js';
import type { NetworkPlan } from '../network/setup.js';
import { validStdio } from '../container/stdio.js';
import { isIPv4, tryParseCidr } from '../network/cidr.js';
import { isValidIfName } from '../network/bridge.js';
import { MAX_HOLD_MS, MIN_HOLD_MS } from './api.js';
import type { AgentApi, Checksum, BeginRequest, HelloResult, PreflightRequest, PreflightResult, PutImagesRequest, PutImagesResult, PutLogsRequest, PutUpperRequest, StreamResult } from './api.js';
import { storeSpec } from '../store/schema.js';
import { signatureRecord } from '../sign/signature.js';
import type { SpaceUse } from './peer-space.js';
import { CAPABILITY_NAMES } from '../security/capabilities.js';
import type { IdRange } from '../userns/ranges.js';
import type { DeviceNode, DeviceRule } from '../security/devices.js';
import type { SecurityProfile } from '../security/profile.js';
import type { CompiledSeccomp, SeccompArg, SeccompRule } from '../security/seccomp.js';
import { type Validator, arr, bool, lit, nullable, num, obj, oneOf, optional, refine, str } from './protocol/validate.js';

export * from './protocol/validate.js';

export const NAME = str({ max: 63, pattern: /^[a-z0-9][a-z0-9_.-]{0,62}$/ });
export const MIGRATION_ID = str({ max: 64, pattern: /^[a-z0-9-]{8,64}$/ });
export const IMAGE_DIGEST = str({ max: 71, pattern: /^sha256:[0-9a-f]{64}$/ });
/** a stream's digest: "sha256:<64 hex>" or "crc32:<8 hex>" */
export const STREAM_DIGEST = str({ max: 71, pattern: /^(?:sha256:[0-9a-f]{64}|crc32:[0-9a-f]{8})$/ });
const CHECKSUM = oneOf(lit('sha256'), lit('crc32'));
export const ABS_PATH = str({ max: 4096, pattern: /^\// });
export const IPV4 = refine(str({ max: 15 }), isIPv4, 'an IPv4 address');
export const CIDR = refine(str({ max: 18 }), (s) => tryParseCidr(s) !== undefined, 'a CIDR subnet');
export const IFNAME = refine(str({ max: 15 }), isValidIfName, 'a network interface name');
export const COMPRESSION = oneOf(lit('zstd'), lit('none'));
export const MAX_DELETED = 100_000;
const U32 = num({ int: true, min: 0, max: 0xffff_ffff });
const BYTES = num({ int: true, min: 0 });
const MS = num({ min: 0 });
const TEXT = str({ max: 1024 });
/** CRIU's --inherit-fd key of a pipe or a pty (container/stdio.ts) */
const STDIO_KEY = str({ max: 64, pattern: /^(?:pipe:\[\d+\]|tty\[[0-9a-f]+:[0-9a-f]+\])$/ });

/** A path relative to a directory: not absolute, no '..' component, no NUL, not empty. */
export const REL_PATH = refine(
  str({ max: 4096, min: 1 }),
  (p) => !p.startsWith('/') && !p.split('/').includes('..'),
  "a relative path without '..'",
);

export const leaseOwner = obj<LeaseOwner>({ root: ABS_PATH, container: NAME });

/** A list in which no two items share `key`. */
function uniqueBy<T>(inner: Validator<T[]>, key: (t: T) => string, what: string): Validator<T[]> {
  return refine(inner, (list) => new Set(list.map(key)).size === list.length, `a list naming each ${what} once`);
}

const PAGE_SIZE = refine(str({ max: 8, pattern: /^[1-9][0-9]{0,4}[KMG]B$/ }), (s) => {
  try {
    return pageSizeName(parsePageSize(s)) === s;
  } catch {
    return false;
  }
}, 'a huge page size such as 2MB');

const hugetlbLimit = refine(
  obj<HugetlbLimit>({ pageSize: PAGE_SIZE, limitBytes: BYTES }),
  (h) => h.limitBytes % parsePageSize(h.pageSize) === 0,
  'a whole number of huge pages',
);

/** Throttled devices: absolute paths, each once. */
function deviceRates(rate: Validator<number>): Validator<DeviceRate[]> {
  const DEVICE_PATH = str({ max: 4096, pattern: /^\/[^\n]*$/ });
  return uniqueBy(arr(obj<DeviceRate>({ path: DEVICE_PATH, rate }), { max: 64 }), (r) => r.path, 'device');
}

export const limits = obj<Limits>({
  memoryBytes: optional(num({ int: true, min: 1 })),
  memoryReservationBytes: optional(num({ int: true, min: 1 })),
  cpus: optional(num({ min: 0.01, max: 1024 })),
  cpuWeight: optional(num({ int: true, min: 1, max: 10000 })),
  cpusetCpus: optional(str({ max: 256, pattern: /^[0-9][0-9,-]*$/ })),
  pidsLimit: optional(num({ int: true, min: -1 })),
  ioWeight: optional(num({ int: true, min: 1, max: 10000 })),
  hugetlb: optional(uniqueBy(arr(hugetlbLimit, { max: 8 }), (h) => h.pageSize, 'page size')),
  netClsClassid: optional(num({ int: true, min: 1, max: 0xffff_ffff })),
  netPrio: optional(uniqueBy(arr(obj<NetPrio>({ iface: IFNAME, priority: U32 }), { max: 64 }), (p) => p.iface, 'interface')),
  deviceReadBps: optional(deviceRates(num({ int: true, min: 1 }))),
  deviceWriteBps: optional(deviceRates(num({ int: true, min: 1 }))),
  deviceReadIops: optional(deviceRates(num({ int: true, min: 1, max: 0xffff_ffff }))),
  deviceWriteIops: optional(deviceRates(num({ int: true, min: 1, max: 0xffff_ffff }))),
});

const CAP = oneOf(...CAPABILITY_NAMES.map((c) => lit(c)));
const U64_TEXT = str({ max: 20, pattern: /^\d{1,20}$/ });
const SECCOMP_ACTION = oneOf(lit('allow'), lit('errno'), lit('kill'), lit('trap'), lit('log'));
const ERRNO = num({ int: true, min: 0, max: 4095 });
const DEV_NUM = nullable(num({ int: true, min: 0, max: 0xffff_ffff }));
const DEV_PATH = str({ max: 255, pattern: /^\/dev\/[^\0]+$/ });

export const securityProfile = obj<SecurityProfile>({
  privileged: bool(),
  capabilities: arr(CAP, { max: 64 }),
  noNewPrivileges: bool(),
  seccomp: obj<SecurityProfile['seccomp']>({
    source: str({ max: 4096 }),
    compiled: optional(obj<CompiledSeccomp>({
      defaultAction: SECCOMP_ACTION,
      defaultErrno: ERRNO,
      rules: arr(obj<SeccompRule>({
        names: arr(str({ max: 64, pattern: /^[a-z_][a-z0-9_]*$/ }), { max: 1024 }),
        action: SECCOMP_ACTION,
        errno: ERRNO,
        args: arr(obj<SeccompArg>({
          index: num({ int: true, min: 0, max: 5 }),
          op: oneOf(lit('eq'), lit('ne'), lit('lt'), lit('le'), lit('gt'), lit('ge'), lit('masked_eq')),
          value: U64_TEXT,
          valueTwo: U64_TEXT,
        }), { max: 6 }),
      }), { max: 4096 }),
    })),
  }),
  maskedPaths: arr(ABS_PATH, { max: 256 }),
  readonlyPaths: arr(ABS_PATH, { max: 256 }),
  cgroupNamespace: bool(),
  sysReadOnly: bool(),
  devices: obj<SecurityProfile['devices']>({
    rules: arr(obj<DeviceRule>({
      type: oneOf(lit('a'), lit('c'), lit('b')),
      major: DEV_NUM,
      minor: DEV_NUM,
      access: str({ max: 3, pattern: /^[rwm]{1,3}$/ }),
    }), { max: 256 }),
    nodes: arr(obj<DeviceNode>({
      path: DEV_PATH,
      hostPath: str({ max: 4096, pattern: /^\/[^\0=]*$/ }),
      type: oneOf(lit('c'), lit('b')),
      major: num({ int: true, min: 0, max: 0xffff_ffff }),
      minor: num({ int: true, min: 0, max: 0xffff_ffff }),
      mode: num({ int: true, min: 0, max: 0o7777 }),
    }), { max: 256 }),
  }),
});

export const containerConfig = obj<ContainerConfig>({
  name: NAME,
  image: obj<ContainerConfig['image']>({ name: NAME, digest: IMAGE_DIGEST }),
  command: arr(str({ max: 65536 }), { max: 4096 }),
  env: arr(str({ max: 65536 }), { max: 4096 }),
  workdir: str({ max: 4096 }),
  user: optional(obj<NonNullable<ContainerConfig['user']>>({ uid: U32, gid: U32 })),
  hostname: str({ max: 255 }),
  limits,
  net: obj<ContainerConfig['net']>({ mode: oneOf(lit('none'), lit('bridge')), ip: optional(IPV4) }),
  log: optional(obj<LogPolicy>({ maxBytes: num({ int: true, min: MIN_LOG_BYTES }), maxFiles: num({ int: true, min: 1, max: MAX_LOG_FILES }) })),
  createdAt: str({ max: 64 }),
  security: optional(securityProfile),
  userns: optional(obj<IdRange>({ start: num({ int: true, min: 1, max: 0xffff_ffff }), size: num({ int: true, min: 1, max: 0xffff_ffff }) })),
  tty: optional(bool()),
});

export const networkPlan = obj<NetworkPlan>({
  mode: oneOf(lit('none'), lit('bridge')),
  ip: optional(IPV4),
  prefix: optional(num({ int: true, min: 0, max: 32 })),
  gateway: optional(IPV4),
  hostVeth: optional(IFNAME),
  bridge: optional(IFNAME),
  subnet: optional(CIDR),
  leaseDir: optional(ABS_PATH),
  owner: leaseOwner,
});

type HelloParams = Parameters<AgentApi['hello']>[0];
export const helloParams = obj<HelloParams>({
  protocol: num({ int: true, min: 0, max: 0xffff }),
  tool: str({ max: 64 }),
  version: str({ max: 64 }),
});

/** Extra fields are dropped, not refused: a newer agent may say more about itself. */
export const helloResult = obj<HelloResult>({
  protocol: num({ int: true, min: 0, max: 0xffff }),
  tool: str({ max: 64 }),
  version: str({ max: 64 }),
  hostname: str({ max: 255 }),
  root: ABS_PATH,
  criu: obj<HelloResult['criu']>({ version: str({ max: 64 }), ok: bool() }, { extra: 'strip' }),
  cgroup: obj<HelloResult['cgroup']>({ kind: str({ max: 32 }), controllers: arr(str({ max: 64 }), { max: 64 }) }, { extra: 'strip' }),
  memDirtyTrack: bool(),
  challenge: str({ max: 64, min: 64, pattern: /^[0-9a-f]{64}$/ }),
}, { extra: 'strip' });

export const preflightRequest = obj<PreflightRequest>({
  name: NAME,
  config: containerConfig,
  network: nullable(networkPlan),
  cpuinfo: nullable(str({ max: 1 << 17, pattern: /^[A-Za-z0-9+/]*={0,2}$/ })),
  memoryBytes: BYTES,
  upperBytes: BYTES,
  logBytes: optional(BYTES),
  imageBytes: optional(BYTES),
  leaseOwner: nullable(leaseOwner),
  epoch: BYTES,
});

const spaceUse = obj<SpaceUse>({
  mountPoint: ABS_PATH,
  tmpfs: bool(),
  items: arr(obj<SpaceUse['items'][number]>({ what: oneOf(lit('memory images'), lit('upper layer'), lit('logs'), lit('image')), bytes: BYTES }), { max: 8 }),
  marginBytes: BYTES,
  needBytes: BYTES,
  freeBytes: BYTES,
  fits: bool(),
});

export const preflightResult = obj<PreflightResult>({
  ok: bool(),
  problems: arr(obj<PreflightResult['problems'][number]>({ check: str({ max: 64 }), message: TEXT, fix: TEXT }), { max: 256 }),
  needImage: bool(),
  freeBytes: BYTES,
  space: optional(arr(spaceUse, { max: 8 })),
});

/** The fields of a begin request the source signs (move/statement.ts). */
export const beginFields = {
  migrationId: MIGRATION_ID,
  epoch: BYTES,
  name: NAME,
  config: containerConfig,
  network: nullable(networkPlan),
  stdio: refine(obj<BeginRequest['stdio']>({ stdout: STDIO_KEY, stderr: STDIO_KEY }), validStdio, 'pipes or one pty'),
  criuOptions: obj<BeginRequest['criuOptions']>({ tcpEstablished: bool(), fileLocks: bool() }),
};

const SIGNED = obj<BeginRequest['signed']>({ statement: str({ max: 1 << 22 }), signature: signatureRecord });

export const beginRequest = obj<BeginRequest>({
  ...beginFields,
  leaseOwner: nullable(leaseOwner),
  signed: SIGNED,
  memoryBytes: optional(BYTES),
  upperBytes: optional(BYTES),
  criuDeadline: optional(obj<NonNullable<BeginRequest['criuDeadline']>>({
    baseS: num({ min: 1, max: 86_400 }), perGiBS: num({ min: 0, max: 86_400 }), stallS: num({ min: 0, max: 86_400 }),
  })),
  holdMs: optional(num({ min: MIN_HOLD_MS, max: MAX_HOLD_MS })),
});

export const putUpperRequest = obj<PutUpperRequest>({
  migrationId: MIGRATION_ID,
  phase: oneOf(lit('base'), lit('delta')),
  deleted: arr(REL_PATH, { max: MAX_DELETED }),
  compression: COMPRESSION,
  checksum: optional(CHECKSUM),
});

export const putLogsRequest = obj<PutLogsRequest>({
  migrationId: MIGRATION_ID,
  replace: bool(),
  parts: arr(obj<PutLogsRequest['parts'][number]>({
    file: str({ max: 32, pattern: /^(?:container\.log(?:\.[1-9]\d{0,2})?|oom\.json)$/ }),
    offset: BYTES,
    bytes: BYTES,
  }), { max: MAX_LOG_FILES + 1 }),
  compression: COMPRESSION,
  checksum: optional(CHECKSUM),
});

export const putImagesRequest = obj<PutImagesRequest>({
  migrationId: MIGRATION_ID,
  compression: COMPRESSION,
  format: optional(oneOf(lit('tar'), lit('records'))),
  checksum: optional(CHECKSUM),
  restore: optional(obj<NonNullable<PutImagesRequest['restore']>>({ upper: arr(STREAM_DIGEST, { max: 4096 }) })),
});

type PrepareParams = Parameters<AgentApi['prepare']>[0];
export const prepareParams = obj<PrepareParams>({
  migrationId: MIGRATION_ID,
  expect: obj<PrepareParams['expect']>({ images: STREAM_DIGEST, upper: arr(STREAM_DIGEST, { max: 4096 }) }),
  signed: SIGNED,
});

const byMigration = obj<{ migrationId: string }>({ migrationId: MIGRATION_ID });
const streamResult = obj<StreamResult>({ bytes: BYTES, digest: STREAM_DIGEST });
const putImagesResult = obj<PutImagesResult>({
  bytes: BYTES,
  digest: STREAM_DIGEST,
  restore: optional(obj<NonNullable<PutImagesResult['restore']>>({ setupMs: MS, criuMs: MS, tailMs: MS, criuTailMs: optional(MS) })),
});
const okResult = obj<{ ok: true }>({ ok: lit(true) });

/** true exactly for the methods whose second parameter is the bulk Readable */
type IsStream<F extends (...a: never[]) => unknown> = Parameters<F> extends [unknown, Readable] ? true : false;

export interface MethodSpec<P, R, S extends boolean> {
  params: Validator<P>;
  result: Validator<R>;
  stream: S;
}

export type AgentSpec = {
  [K in keyof AgentApi]: MethodSpec<Parameters<AgentApi[K]>[0], Awaited<ReturnType<AgentApi[K]>>, IsStream<AgentApi[K]>>;
};

export const agentSpec: AgentSpec = {
  hello: { params: helloParams, result: helloResult, stream: false },
  preflight: { params: preflightRequest, result: preflightResult, stream: false },
  putImage: { params: obj<{ name: string; digest: string }>({ name: NAME, digest: IMAGE_DIGEST }), result: streamResult, stream: true },
  begin: { params: beginRequest, result: okResult, stream: false },
  putUpper: { params: putUpperRequest, result: streamResult, stream: true },
  putLogs: { params: putLogsRequest, result: streamResult, stream: true },
  warm: { params: obj<{ migrationId: string; bytes: number }>({ migrationId: MIGRATION_ID, bytes: BYTES }), result: obj({ bytes: BYTES, ms: MS, poolBytes: BYTES }), stream: false },
  putImages: { params: putImagesRequest, result: putImagesResult, stream: true },
  probe: { params: obj<{ bytes: number; compression?: 'zstd' | 'none'; checksum?: Checksum }>({ bytes: BYTES, compression: optional(COMPRESSION), checksum: optional(CHECKSUM) }), result: streamResult, stream: true },
  prepare: { params: prepareParams, result: obj({ restoreMs: MS, initPid: num({ int: true, min: 1, max: 0x3fff_ffff }), setupMs: MS, criuMs: MS }), stream: false },
  commit: { params: byMigration, result: obj({ resumeMs: MS }), stream: false },
  abort: { params: byMigration, result: okResult, stream: false },
  status: { params: byMigration, result: obj({ phase: str({ max: 64 }) }), stream: false },
  containerStatus: { params: obj<{ name: string }>({ name: NAME }), result: obj({ status: str({ max: 32 }), epochSeen: BYTES }), stream: false },
  ...storeSpec,
};

export type AgentMethod = keyof AgentApi;

/** The spec of `name` when it is a method of AgentApi (own keys only: never a prototype property). */
export function methodSpec(name: string): AgentSpec[AgentMethod] | undefined {
  return Object.hasOwn(agentSpec, name) ? agentSpec[name as AgentMethod] : undefined;
}
