import type { AgentSpec } from '../agent/schema.js';
import { arr, bool, lit, nullable, num, obj, oneOf, str, type Validator } from '../agent/protocol/validate.js';
import { STORE_FORMAT, type StoreInfo, type VerifyReport } from './backend.js';
import { MAX_GET_PER_CALL, MAX_IDS_PER_CALL, MAX_REPORTED, type StoreApi } from './api.js';

const ABS_PATH = str({ max: 4096, pattern: /^\// });
const HEX64 = str({ max: 64, min: 64, pattern: /^[0-9a-f]{64}$/ });
const SNAP_ID = str({ max: 128, pattern: /^[a-z0-9][a-z0-9_.-]{0,127}$/ });
const BYTES = num({ int: true, min: 0 });
// no pattern: a regex over megabytes per call costs more than it saves; every object carries its own checksum
const B64 = (max: number) => str({ max });
const ok = obj<{ ok: true }>({ ok: lit(true) });
const byPath = obj<{ path: string }>({ path: ABS_PATH });

const storeInfo: Validator<StoreInfo> = obj<StoreInfo>({
  format: lit(STORE_FORMAT),
  id: str({ min: 32, max: 32, pattern: /^[0-9a-f]{32}$/ }),
  createdAt: str({ max: 64 }),
  chunking: obj<StoreInfo['chunking']>({ algorithm: oneOf(lit('fastcdc-gear32'), lit('fastcdc-gear32-keyed')), min: BYTES, avg: BYTES, max: BYTES }),
  encryption: nullable(obj<NonNullable<StoreInfo['encryption']>>({ algorithm: lit('aes-256-gcm'), keyCheck: str({ max: 64, pattern: /^[0-9a-f]{64}$/ }) })),
});

const verifyReport = obj<VerifyReport>({
  chunks: BYTES,
  bytes: BYTES,
  bad: arr(obj<VerifyReport['bad'][number]>({ id: HEX64, problem: str({ max: 256 }) }), { max: MAX_REPORTED }),
  missing: arr(HEX64, { max: MAX_REPORTED }),
});

type StoreSpec = Pick<AgentSpec, keyof StoreApi>;

export const storeSpec: StoreSpec = {
  storeOpen: { params: obj({ path: ABS_PATH, create: nullable(storeInfo) }), result: obj({ info: nullable(storeInfo) }), stream: false },
  storeLock: { params: obj({ path: ABS_PATH, timeoutMs: num({ int: true, min: 0, max: 3_600_000 }) }), result: ok, stream: false },
  storeUnlock: { params: byPath, result: ok, stream: false },
  storeHas: { params: obj({ path: ABS_PATH, ids: arr(HEX64, { max: MAX_IDS_PER_CALL }) }), result: obj({ have: arr(bool(), { max: MAX_IDS_PER_CALL }) }), stream: false },
  storePutChunks: { params: byPath, result: obj({ written: BYTES, bytes: BYTES }), stream: true },
  storeGetChunks: { params: obj({ path: ABS_PATH, ids: arr(HEX64, { max: MAX_GET_PER_CALL }) }), result: obj({ objects: arr(B64(1 << 20), { max: MAX_GET_PER_CALL }) }), stream: false },
  storeListSnapshots: { params: byPath, result: obj({ ids: arr(SNAP_ID, { max: 100_000 }) }), stream: false },
  storeGetSnapshot: { params: obj({ path: ABS_PATH, id: SNAP_ID, offset: BYTES }), result: obj({ meta: B64(6 << 20), total: BYTES }), stream: false },
  storePutSnapshot: { params: obj({ path: ABS_PATH, id: SNAP_ID }), result: ok, stream: true },
  storeDeleteSnapshot: { params: obj({ path: ABS_PATH, id: SNAP_ID }), result: ok, stream: false },
  storeGetIndex: { params: obj({ path: ABS_PATH, offset: BYTES }), result: obj({ index: nullable(B64(6 << 20)), total: BYTES }), stream: false },
  storePutIndex: { params: byPath, result: ok, stream: true },
  storeVerify: { params: obj({ path: ABS_PATH, snapshot: nullable(SNAP_ID) }), result: verifyReport, stream: false },
  storeCollect: { params: byPath, result: obj({ chunks: BYTES, bytes: BYTES }), stream: false },
  storeStats: { params: byPath, result: obj({ chunks: BYTES, bytes: BYTES, snapshots: BYTES }), stream: false },
};
