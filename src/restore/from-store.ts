import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StreamResult } from '../agent/api.js';
import { TsmError } from '../errors/errors.js';
import { resolveImage } from '../image/store.js';
import type { PeerConnection } from '../move/move.js';
import { HELLO } from '../move/peer-calls.js';
import { migrationId } from '../move/plan.js';
import { beginStatementText, signStatement, sumsStatementText } from '../move/statement.js';
import type { Runtime } from '../runtime/context.js';
import type { ChunkStore } from '../store/chunk-store.js';
import type { Snapshot } from '../store/snapshot.js';
import { Meter } from '../transfer/receive.js';
import { sendTree } from '../transfer/send.js';
import { validateName } from '../util/name.js';
import { candidates, type Selector } from './choose.js';

async function abortOn(conn: PeerConnection, id: string, close = false): Promise<boolean> {
  try {
    await conn.agent.abort({ migrationId: id });
    return true;
  } catch {
    return false;
  } finally {
    if (close) await conn.close().catch(() => undefined);
  }
}

export interface HostProbe {
  name: string;
  connect: () => Promise<PeerConnection>;
}

export interface StoreRestoreRequest {
  name: string;
  selector: Selector;
  store: ChunkStore;
  /** where to restore */
  target: HostProbe;
  /** every host that might run the container (the target and this host included) */
  hosts: HostProbe[];
  force: boolean;
  onWarning?: (msg: string) => void;
}

export interface StoreRestoreResult {
  id: string;
  host: string;
  createdAt: string;
  skipped: Array<{ id: string; problem: string }>;
  bytes: number;
  ms: number;
}

/**
 * Disaster recovery: restore a verified checkpoint from a store onto a host
 * (this one or another), through the same agent calls a move uses: the peer
 * recreates cgroups, network (same IP) and rootfs, restores held, then
 * resumes. Refused while the container is known to run anywhere (never two
 * copies) unless forced; a corrupted checkpoint is refused, or with --latest
 * skipped for the newest good one.
 */
export async function restoreFromStore(rt: Runtime, req: StoreRestoreRequest): Promise<StoreRestoreResult> {
  validateName('container', req.name);
  const t0 = performance.now();
  const warn = req.onWarning ?? (() => undefined);

  // ---- choose: the newest good checkpoint the selector allows ----
  const { snapshots, bad, missing } = await req.store.list(req.name);
  for (const b of bad) {
    // its metadata cannot be read, so which container it holds is a guess from its id
    if (b.id.startsWith(`${req.name}-`)) warn(`checkpoint ${b.id} cannot be read (${b.problem}); it is not considered`);
  }
  // what the index lists but the store lost takes part in the choice: chosen, it is an error, never skipped
  const gone = new Map(missing.map((e) => [e.id, e]));
  const { ids, fallback } = candidates([...snapshots, ...missing], req.name, req.selector);
  if (!ids.length) {
    throw new TsmError('ENOENT_CHECKPOINT', `no checkpoint of "${req.name}" in ${req.store.location} matches`, {
      fix: `list them with tsmigrate store ls ${req.name} --store ${req.store.location}`,
    });
  }
  const skipped: Array<{ id: string; problem: string }> = [];
  let snap: Snapshot | undefined;
  for (const id of ids) {
    const lost = gone.get(id);
    if (lost) {
      throw new TsmError('EINTEGRITY', `checkpoint ${id} of "${req.name}" (taken ${lost.createdAt}) is in the index of ${req.store.location}, but its metadata is gone from the store`, {
        fix: 'nothing was changed; find out what removed it on the store host (tsmigrate store verify); name an older checkpoint explicitly to restore that one',
      });
    }
    const problems = await req.store.check(id);
    if (!problems.length) {
      snap = await req.store.load(id);
      break;
    }
    const problem = problems.slice(0, 3).join('; ');
    if (!fallback) {
      throw new TsmError('EINTEGRITY', `checkpoint ${id} is corrupted: ${problem}`, { fix: 'nothing was changed; choose another checkpoint, or use --latest to take the newest good one' });
    }
    skipped.push({ id, problem });
    warn(`checkpoint ${id} is corrupted (${problem}); trying the one before it`);
  }
  if (!snap) {
    throw new TsmError('EINTEGRITY', `every checkpoint of "${req.name}" in ${req.store.location} is corrupted`, { fix: 'nothing was changed; run tsmigrate store verify to see the damage' });
  }
  // signed by a trusted key over its metadata and every chunk id, or refused (never skipped for an older one)
  await rt.signing.verify('checkpoint', snap.body, snap.signature, `checkpoint ${snap.meta.id} in ${req.store.location}`);
  const m = snap.meta;

  // ---- never two copies: ask every host we know ----
  let epoch = m.epoch;
  const unreachable: string[] = [];
  for (const h of req.hosts) {
    let conn: PeerConnection | undefined;
    try {
      // (a connection over SSH has said hello already)
      conn = await h.connect();
      const st = await conn.agent.containerStatus({ name: req.name });
      epoch = Math.max(epoch, st.epochSeen);
      if (st.status !== 'absent' && st.status !== 'exited' && !req.force) {
        throw new TsmError('EEXIST_CONTAINER', `"${req.name}" is ${st.status} on ${h.name}: restoring it would make a second copy`, {
          fix: `stop it there (tsmigrate rm -f ${req.name} on ${h.name}) or move it instead; --force restores anyway`,
        });
      }
    } catch (e) {
      if (e instanceof TsmError && e.code === 'EEXIST_CONTAINER') throw e;
      unreachable.push(`${h.name} (${(e as Error).message.split('\n')[0]})`);
    } finally {
      await conn?.close().catch(() => undefined);
    }
  }
  if (unreachable.length && !req.force) {
    throw new TsmError('EHOST_UNREACHABLE', `cannot tell whether "${req.name}" still runs on ${unreachable.join(', ')}`, {
      fix: 'if that host is down for good, pass --force; otherwise bring it back and retry',
    });
  }
  if (unreachable.length) warn(`restoring although these hosts could not be asked: ${unreachable.join(', ')}`);

  // ---- restore on the target, exactly as the end of a move ----
  const id = migrationId(randomBytes(4).toString('hex'), new Date());
  const conn = await req.target.connect();
  let begun = false;
  try {
    const peer = conn.agent;
    const ck = m.checkpoint;
    const pre = await peer.preflight({
      name: req.name, config: ck.container, network: ck.network, cpuinfo: null,
      memoryBytes: m.streams.criu.bytes, upperBytes: m.streams.upper.bytes, leaseOwner: null, epoch: epoch + 1,
    });
    const problems = pre.problems;
    if (problems.length) {
      throw new TsmError('EPREFLIGHT', `${req.target.name} cannot take "${req.name}": ${problems.map((x) => x.message).join('; ')}`, { fix: problems.map((x) => x.fix).join('; ') });
    }
    if (pre.needImage) {
      const image = await resolveImage(rt.paths, ck.image.digest).catch(() => {
        throw new TsmError('ENOENT_IMAGE', `image ${ck.image.name} (${ck.image.digest.slice(0, 19)}) is neither on ${req.target.name} nor here`, {
          fix: `import it on ${req.target.name}: tsmigrate image import ${ck.image.name} DIR|TAR`,
        });
      });
      await sendTree(image.rootfs, (d) => peer.putImage({ name: image.name, digest: image.digest }, d), { zstd: true });
    }
    // the target checks, against its own trusted keys, that this host vouches for what it restores
    const { challenge } = await peer.hello(HELLO);
    const vouched = {
      migrationId: id, epoch: epoch + 1, name: req.name, config: ck.container, network: ck.network, stdio: ck.stdio,
      criuOptions: { tcpEstablished: ck.criu.options.tcpEstablished, fileLocks: ck.criu.options.fileLocks },
    };
    const signed = await signStatement(rt.signing, 'move-begin', beginStatementText(challenge, vouched));
    // (an abort of a migration the peer never began is a no-op: a begin whose reply was lost is undone too)
    begun = true;
    await peer.begin({ ...vouched, leaseOwner: null, criuDeadline: { ...rt.criuDeadline }, memoryBytes: m.streams.criu.bytes, upperBytes: m.streams.upper.bytes, signed });
    const send = async (what: 'upper' | 'criu', call: (d: Readable) => Promise<StreamResult>) => {
      const meter = new Meter();
      // pipeline handles every stream's 'error' from the first byte on, whenever the peer starts reading;
      // a chunk that fails its check destroys the meter, and so the call, with that error
      let storeError: unknown;
      const piped = pipeline(req.store.readStream(snap!.ids[what], `checkpoint ${m.id}`), meter).catch((e: unknown) => void (storeError ??= e));
      let r: StreamResult;
      try {
        r = await call(meter);
      } catch (e) {
        meter.destroy();
        await piped;
        // the store's own error says which chunk; the peer's view of it ("the source's data failed") does not
        throw storeError instanceof TsmError ? storeError : e;
      }
      await piped;
      if (storeError) throw storeError;
      if (r.digest !== `sha256:${m.streams[what].sha256}`) {
        throw new TsmError('EINTEGRITY', `the ${what} stream of ${m.id} arrived as ${r.digest.slice(0, 19)}…, the checkpoint says sha256:${m.streams[what].sha256.slice(0, 12)}…`, { fix: 'nothing was changed; retry, or restore another checkpoint' });
      }
      return r.bytes;
    };
    let bytes = await send('upper', (d) => peer.putUpper({ migrationId: id, phase: 'base', deleted: [], compression: 'none' }, d));
    bytes += await send('criu', (d) => peer.putImages({ migrationId: id, compression: 'none' }, d));
    const expect = { images: `sha256:${m.streams.criu.sha256}`, upper: [`sha256:${m.streams.upper.sha256}`] };
    await peer.prepare({ migrationId: id, expect, signed: await signStatement(rt.signing, 'move-sums', sumsStatementText(challenge, id, expect)) });
    await peer.commit({ migrationId: id });
    return { id: m.id, host: req.target.name, createdAt: m.createdAt, skipped, bytes, ms: performance.now() - t0 };
  } catch (e) {
    // a half-done restore is rolled back on the target, over a new connection if this one is gone
    if (begun && !(await abortOn(conn, id)) && !(await req.target.connect().then((c) => abortOn(c, id, true), () => false))) {
      warn(`could not roll back restore ${id} on ${req.target.name}: run tsmigrate recover there`);
    }
    throw e;
  } finally {
    await conn.close().catch(() => undefined);
  }
}
