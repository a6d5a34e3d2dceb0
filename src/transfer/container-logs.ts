/**
 * A moved container's log files and OOM record (container/log-files.ts) go to
 * the peer in two sends: all of them while the container runs, then in the
 * downtime what changed since, which is normally only the bytes appended to
 * container.log (everything again, bounded by the log policy, when it rotated
 * in between). A part is a byte range of one file, written on the peer at an
 * offset; the stream is the parts' bytes one after the other.
 */
import { promises as fs, type promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateZstd } from '../archive/inflate.js';
import type { Checksum, PutLogsRequest, StreamResult } from '../agent/api.js';
import { MAX_OOM_RECORD_BYTES, OOM_FILE, byAge, isHistoryFile, logIndexOf, type FileFact } from '../container/log-files.js';
import type { LogPolicy } from '../container/types.js';
import { TsmError } from '../errors/errors.js';
import { Meter, assertSameHash } from './receive.js';
import { sendReadable, type SendOptions } from './send.js';

export interface LogPart {
  file: string;
  /** where the bytes are read in the source's file */
  from: number;
  /** where they are written in the peer's file (which is cut there first) */
  offset: number;
  bytes: number;
}

export interface LogPlan {
  /** remove the peer's log files and OOM record first */
  replace: boolean;
  parts: LogPart[];
}

/** What a send was planned from, for the next one to send only what changed. */
export interface LogsSent {
  files: FileFact[];
  plan: LogPlan;
}

const keptLog = (f: FileFact, policy: LogPolicy) => {
  const i = logIndexOf(f.name);
  return i !== undefined && i < policy.maxFiles;
};

/**
 * Pure: everything, bounded by the policy: the log files it keeps (each its newest
 * maxBytes: a file written before rotation may be larger) and the OOM record.
 */
export function planLogsBase(files: FileFact[], policy: LogPolicy): LogPlan {
  const parts: LogPart[] = [];
  for (const f of [...files].sort(byAge)) {
    if (keptLog(f, policy)) {
      const bytes = Math.min(f.size, policy.maxBytes);
      parts.push({ file: f.name, from: f.size - bytes, offset: 0, bytes });
    } else if (f.name === OOM_FILE && f.size <= MAX_OOM_RECORD_BYTES) {
      parts.push({ file: f.name, from: 0, offset: 0, bytes: f.size });
    }
  }
  return { replace: true, parts };
}

/**
 * Pure: what changed since `sent`: the bytes appended to container.log and a rewritten OOM
 * record; everything again (planLogsBase) if the log rotated since or would outgrow the policy.
 */
export function planLogsTail(sent: LogsSent, now: FileFact[], policy: LogPolicy): LogPlan {
  const key = (f: FileFact) => `${f.name} ${f.ino} ${f.size}`;
  const rotated = (fs: FileFact[]) => fs.filter((f) => keptLog(f, policy) && f.name !== 'container.log').map(key).sort().join('\n');
  const cur0 = sent.files.find((f) => f.name === 'container.log');
  const cur1 = now.find((f) => f.name === 'container.log');
  const curPart = sent.plan.parts.find((p) => p.file === 'container.log');
  const onPeer = curPart ? curPart.offset + curPart.bytes : 0;
  const appendable = cur0 !== undefined && cur1 !== undefined && cur0.ino === cur1.ino && cur1.size >= cur0.size &&
    onPeer + (cur1.size - cur0.size) <= policy.maxBytes && rotated(sent.files) === rotated(now);
  if (!appendable) return planLogsBase(now, policy);
  const parts: LogPart[] = [];
  if (cur1.size > cur0.size) parts.push({ file: cur1.name, from: cur0.size, offset: onPeer, bytes: cur1.size - cur0.size });
  const oom0 = sent.files.find((f) => f.name === OOM_FILE);
  const oom1 = now.find((f) => f.name === OOM_FILE);
  if (oom1 && oom1.size <= MAX_OOM_RECORD_BYTES && (!oom0 || key(oom0) !== key(oom1))) parts.push({ file: oom1.name, from: 0, offset: 0, bytes: oom1.size });
  return { replace: false, parts };
}

/** A container dir's log files and OOM record, held open: their bytes stay as listed whatever the supervisor renames. */
export class OpenLogs {
  private constructor(readonly files: FileFact[], private readonly handles: Map<string, fsp.FileHandle>) {}

  static async open(dir: string): Promise<OpenLogs> {
    for (let round = 0; ; round++) {
      const handles = new Map<string, fsp.FileHandle>();
      const files: FileFact[] = [];
      let raced = false;
      for (const name of (await fs.readdir(dir)).filter(isHistoryFile)) {
        const fh = await fs.open(path.join(dir, name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW).catch(() => undefined);
        const st = await fh?.stat();
        if (!fh || !st) {
          raced = true; // renamed by a rotation between the listing and the open
          continue;
        }
        handles.set(name, fh);
        files.push({ name, ino: st.ino, size: st.size });
      }
      raced ||= new Set(files.map((f) => f.ino)).size !== files.length;
      if (!raced || round >= 4) return new OpenLogs(files.sort(byAge), handles);
      for (const fh of handles.values()) await fh.close();
    }
  }

  /** The plan's bytes, part after part. */
  stream(plan: LogPlan): Readable {
    const handles = this.handles;
    return Readable.from((async function* () {
      for (const p of plan.parts) {
        const fh = handles.get(p.file);
        if (!fh) throw new TsmError('EINTERNAL', `no open ${p.file} for the log plan`);
        for (let done = 0; done < p.bytes; ) {
          const buf = Buffer.alloc(Math.min(p.bytes - done, 1 << 20));
          const { bytesRead } = await fh.read(buf, 0, buf.length, p.from + done);
          if (bytesRead === 0) throw new TsmError('EIO', `${p.file} is shorter than it was (${p.from + done} bytes)`, { fix: 'retry the move' });
          done += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      }
    })());
  }

  async close(): Promise<void> {
    for (const fh of this.handles.values()) await fh.close().catch(() => undefined);
  }
}

/** The request for a plan: the parts as the peer writes them. */
export function logsRequest(migrationId: string, plan: LogPlan, compression: 'zstd' | 'none', checksum: Checksum): PutLogsRequest {
  return { migrationId, replace: plan.replace, parts: plan.parts.map(({ file, offset, bytes }) => ({ file, offset, bytes })), compression, checksum };
}

const refused = (why: string) =>
  new TsmError('EPROTO', `the source sent a container log the peer refuses: ${why}`, { fix: 'install the same tsmigrate version on both hosts and retry' });

/** The peer's checks of a request against the container's log policy, before anything is written. */
export function checkLogParts(p: Pick<PutLogsRequest, 'parts'>, policy: LogPolicy): void {
  if (p.parts.length > policy.maxFiles + 1) throw refused(`${p.parts.length} parts for at most ${policy.maxFiles} log files and an OOM record`);
  for (const part of p.parts) {
    const i = logIndexOf(part.file);
    if (part.file === OOM_FILE) {
      if (part.offset !== 0 || part.bytes > MAX_OOM_RECORD_BYTES) throw refused(`${OOM_FILE} of ${part.bytes} bytes at ${part.offset}`);
    } else if (i === undefined || i >= policy.maxFiles) {
      throw refused(`${part.file} is not one of the ${policy.maxFiles} log files kept`);
    } else if (part.offset + part.bytes > policy.maxBytes) {
      throw refused(`${part.file} would grow to ${part.offset + part.bytes} bytes, beyond the ${policy.maxBytes} of --log-max-size`);
    }
  }
}

/** The peer: write the parts arriving on `data` into container dir `dir`. */
export async function receiveLogs(data: Readable, dir: string, p: PutLogsRequest, policy: LogPolicy): Promise<StreamResult> {
  checkLogParts(p, policy);
  if (p.replace) {
    for (const name of (await fs.readdir(dir)).filter(isHistoryFile)) await fs.rm(path.join(dir, name), { force: true });
  }
  const meter = new Meter(undefined, p.checksum ?? 'sha256');
  const upstream = pipeline(data, meter);
  // the parts declare every byte: the stream may not expand beyond them
  const declared = p.parts.reduce((n, x) => n + x.bytes, 0);
  const src: Readable = p.compression === 'zstd' ? meter.pipe(inflateZstd({ maxBytes: declared, maxRatio: 1, ratioSlack: declared }, 'the container logs')) : meter;
  src.once('error', () => meter.destroy());
  upstream.catch((e: Error) => src.destroy(e));
  const take = byteReader(src);
  for (const x of p.parts) {
    const fh = await fs.open(path.join(dir, x.file), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o640);
    try {
      const size = (await fh.stat()).size;
      if (size < x.offset) throw refused(`${x.file} continues at ${x.offset} bytes but has ${size} here`);
      await fh.truncate(x.offset);
      for (let pos = x.offset, left = x.bytes; left > 0; ) {
        const c = await take(left);
        if (!c) throw refused(`the stream ended in ${x.file}`);
        await fh.write(c, 0, c.length, pos);
        pos += c.length;
        left -= c.length;
      }
    } finally {
      await fh.close();
    }
  }
  if (await take(1)) throw refused('more bytes than its parts');
  await upstream;
  return { bytes: meter.bytes, digest: meter.digest() };
}

/** Up to `max` bytes at a time from a stream; undefined at its end. */
function byteReader(src: AsyncIterable<Buffer>): (max: number) => Promise<Buffer | undefined> {
  const it = src[Symbol.asyncIterator]();
  let rest: Buffer = Buffer.alloc(0);
  return async (max) => {
    while (rest.length === 0) {
      const r = await it.next();
      if (r.done) return undefined;
      rest = r.value;
    }
    const out = rest.subarray(0, max);
    rest = rest.subarray(out.length);
    return out;
  };
}

/**
 * Open the container dir's logs, plan from what is there, send the plan's bytes to `call`
 * and check that they arrived as sent. Returns what the plan was made from, for the next.
 */
export async function sendLogs(
  dir: string,
  plan: (files: FileFact[]) => LogPlan,
  call: (plan: LogPlan, data: Readable) => Promise<StreamResult>,
  o: SendOptions,
): Promise<{ sent: LogsSent; bytes: number }> {
  const logs = await OpenLogs.open(dir);
  try {
    const p = plan(logs.files);
    const sent = { files: logs.files, plan: p };
    if (!p.replace && p.parts.length === 0) return { sent, bytes: 0 };
    const r = await sendReadable(logs.stream(p), (d) => call(p, d), o);
    assertSameHash('container log', r.digest, r.peer.digest);
    return { sent, bytes: r.bytes };
  } finally {
    await logs.close();
  }
}
