/**
 * A fake source and a fake peer for driving the move's state machine
 * (src/move/machine.ts) and recovery through their failures in milliseconds.
 * The fakes keep the one fact the tests assert on: how many copies of the
 * container run, and where.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentApi, HelloResult, PrepareResult, PreflightResult } from '../../src/agent/api.js';
import { TsmError } from '../../src/errors/errors.js';
import { MoveJournal } from '../../src/move/journal.js';
import { DEFAULT_TIMING, type MachineDeps, type MigrationRequest } from '../../src/move/machine.js';
import { peerMayGo, type PeerPhase } from '../../src/move/phases.js';
import type { MigrationPlan } from '../../src/move/plan.js';
import type { PeerConnection } from '../../src/move/report.js';
import type { FrozenCopy, LinkMeasure, MoveSource, RunningCopy, SourceFacts, Warmed } from '../../src/move/source.js';
import { statePaths } from '../../src/state/paths.js';
import { silentLogger } from '../../src/util/logger.js';

export const SOURCE_STEPS = ['inspect', 'sendImage', 'measureLink', 'sendRunning', 'warm', 'prepareImages', 'freeze', 'dumpAndSend'] as const;
export type SourceStep = (typeof SOURCE_STEPS)[number];

const lost = () => new TsmError('EHOST_UNREACHABLE', 'the connection to the peer was lost (fake)', { fix: 'none: test fault' });

export class FakeSource implements MoveSource {
  frozen = false;
  linkDown = false;
  removed = false;
  failAt: SourceStep | undefined;
  /** dumpAndSend waits for its signal instead of finishing (a slow link) */
  hangInDump = false;
  memoryBytes = 64 << 20;
  calls: string[] = [];
  peer: FakePeer | undefined;

  get running(): boolean {
    return !this.frozen && !this.removed;
  }
  private step(s: SourceStep): void {
    this.calls.push(s);
    if (this.failAt === s) throw new TsmError('EIO', `source step ${s} failed (fake)`, { fix: 'none: test fault' });
  }
  async inspect(): Promise<SourceFacts> {
    this.step('inspect');
    return {
      config: { name: 'web', image: { name: 'busybox', digest: 'sha256:00' } } as SourceFacts['config'],
      network: null,
      stdio: { stdout: 'pipe:[1]', stderr: 'pipe:[2]' },
      epoch: 1,
      memoryBytes: this.memoryBytes,
      upperBytes: 4096,
      logBytes: 0,
      imageBytes: 0,
      cpuinfo: '',
      image: { name: 'busybox', digest: 'sha256:00' },
      staging: { tmpfs: true, freeBytes: 8 << 30 },
      fileLocks: true,
      locks: { flock: 0, posix: 0, ofd: 0, lease: 0 },
    };
  }
  async sendImage(): Promise<number> {
    this.step('sendImage');
    return 100;
  }
  async measureLink(): Promise<LinkMeasure> {
    this.step('measureLink');
    return { plainBps: this.linkBps, zstdBps: this.linkBps / 2, zstd: { ratio: 0.5, bps: 300e6 } };
  }
  linkBps = 1e9;
  async sendRunning(_peer: AgentApi, id: string): Promise<RunningCopy> {
    this.step('sendRunning');
    await this.peer!.received(id);
    return { upperBase: { bytes: 4096, digest: 'crc32:base' }, logsBytes: 10 };
  }
  async warm(): Promise<Warmed> {
    this.step('warm');
    return { sourceBytes: 0, peerBytes: 0, peerPoolBytes: 0, ms: 0 };
  }
  releaseWarm(): void {}
  async prepareImages(_plan: MigrationPlan): Promise<void> {
    this.step('prepareImages');
  }
  /** performance.now() at the last freeze and thaw: the downtime as the container saw it */
  frozenAt = 0;
  thawedAt = 0;
  async freeze(): Promise<void> {
    this.step('freeze');
    this.frozen = true;
    this.frozenAt = performance.now();
  }
  async thaw(): Promise<void> {
    this.frozen = false;
    this.thawedAt = performance.now();
  }
  async dumpAndSend(_peer: AgentApi, id: string, _p: MigrationPlan, _r: RunningCopy, signal: AbortSignal | undefined, _e: unknown, onLinkDown: () => void): Promise<FrozenCopy> {
    this.step('dumpAndSend');
    this.linkDown = true;
    onLinkDown();
    if (this.hangInDump) {
      await new Promise((_r, rej) => signal?.addEventListener('abort', () => rej(signal.reason as Error), { once: true }));
    }
    await this.peer!.received(id);
    return {
      images: { bytes: 1000, tarBytes: 1000, digest: 'crc32:img', ms: 1, peer: { bytes: 1000, digest: 'crc32:img' } },
      upperDelta: { bytes: 0, digest: 'crc32:delta' },
      logsBytes: 0,
      imagesVia: { via: 'files' },
      dumpedAt: performance.now(),
    };
  }
  async linkUp(): Promise<void> {
    this.linkDown = false;
  }
  async removeCopy(): Promise<void> {
    this.removed = true;
    this.frozen = false;
  }
  async cleanup(): Promise<void> {}
}

export const PEER_CALLS = ['hello', 'preflight', 'begin', 'prepare', 'commit'] as const;
export type PeerCall = (typeof PEER_CALLS)[number];

/** The peer: its migration records, the held copy, whether it runs. Faults: a call fails, its reply is lost, the peer becomes unreachable. */
export class FakePeer {
  records = new Map<string, PeerPhase>();
  failAt: PeerCall | undefined;
  /** the call is done on the peer, but its reply never arrives (and the connection is gone) */
  replyLostAt: PeerCall | undefined;
  /** a failed call also takes the connection and every reconnection away until reachable is set again */
  unreachable = false;
  connects = 0;

  get runningCopies(): number {
    return [...this.records.values()].filter((p) => p === 'committed').length;
  }
  /** a restored copy held stopped (not running, but not gone either) */
  get heldCopies(): number {
    return [...this.records.values()].filter((p) => p === 'prepared').length;
  }
  private go(id: string, to: PeerPhase): void {
    const from = this.records.get(id);
    if (from !== undefined && !peerMayGo(from, to)) throw new TsmError('EBAD_STATE', `migration ${id} is ${from}`, { fix: 'none' });
    this.records.set(id, to);
  }
  private async call<T>(name: PeerCall, effect: () => T): Promise<T> {
    if (this.unreachable) throw lost();
    if (this.failAt === name) {
      this.failAt = undefined;
      throw new TsmError('EPEER', `${name} failed on the peer (fake)`, { fix: 'none: test fault' });
    }
    const r = effect();
    if (this.replyLostAt === name) {
      this.replyLostAt = undefined;
      this.unreachable = true;
      throw lost();
    }
    return r;
  }
  async received(id: string): Promise<void> {
    if (this.unreachable) throw lost();
    this.go(id, 'receiving');
  }
  readonly api = {
    hello: () => this.call('hello', () => ({ protocol: 5, tool: 'tsmigrate', version: 'fake', hostname: 'peer', root: '/peer', criu: { version: '4.2', ok: true }, cgroup: { kind: 'v2', controllers: [] }, memDirtyTrack: false, challenge: '0'.repeat(64) }) as HelloResult),
    preflight: () => this.call('preflight', () => ({ ok: true, problems: [], needImage: true, freeBytes: 1 << 40 }) as PreflightResult),
    begin: (p: { migrationId: string }) => this.call('begin', () => (this.go(p.migrationId, 'begun'), { ok: true as const })),
    prepare: (p: { migrationId: string }) => this.call('prepare', () => (this.go(p.migrationId, 'prepared'), { restoreMs: 1, initPid: 1, setupMs: 1, criuMs: 1 } as PrepareResult)),
    commit: (p: { migrationId: string }) =>
      this.call('commit', () => {
        if (this.records.get(p.migrationId) !== 'committed') this.go(p.migrationId, 'committed');
        return { resumeMs: 1 };
      }),
    abort: async (p: { migrationId: string }) => {
      if (this.unreachable) throw lost();
      const ph = this.records.get(p.migrationId);
      if (ph === 'committed') throw new TsmError('EBAD_STATE', 'already committed', { fix: 'none' });
      if (ph !== undefined && ph !== 'aborted') this.go(p.migrationId, 'aborted');
      return { ok: true as const };
    },
    status: async (p: { migrationId: string }) => {
      if (this.unreachable) throw lost();
      return { phase: this.records.get(p.migrationId) ?? 'unknown' };
    },
  };
  /** the peer gives its held copy up (its hold limit) */
  expire(id: string): void {
    if (this.records.get(id) === 'prepared') this.go(id, 'aborted');
  }
  connect = async (): Promise<PeerConnection> => {
    this.connects++;
    if (this.unreachable) throw lost();
    return { agent: this.api as unknown as AgentApi, close: async () => undefined };
  };
}

export interface Rig {
  source: FakeSource;
  peer: FakePeer;
  journal: MoveJournal;
  deps: MachineDeps;
  req: MigrationRequest;
}

export async function rig(o: { maxDowntimeMs?: number | null; timing?: Partial<MachineDeps['timing']> } = {}): Promise<Rig> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'tsm-machine-'));
  const id = `m-test-${Math.random().toString(16).slice(2, 10)}`;
  const journal = await MoveJournal.create(statePaths(root), id, 'web', 'peer', 1);
  const source = new FakeSource();
  const peer = new FakePeer();
  source.peer = peer;
  const deps: MachineDeps = {
    source, connect: peer.connect, connectForCleanup: peer.connect, journal,
    local: { hostname: 'source', root },
    rates: { dumpBps: 1e9, restoreBps: 1e9, fixedMs: 10 },
    criuDeadline: { baseS: 60, perGiBS: 20, stallS: 30 },
    timing: { ...DEFAULT_TIMING, commitDeadlineMs: 300, abortTimeoutMs: 200, callTimeoutMs: 200, ...o.timing },
    signing: { sign: async (purpose) => ({ format: 'tsmigrate-signature/1', purpose, key: `tsmigrate-ed25519 ${Buffer.alloc(32, 1).toString('base64')} fake`, signature: Buffer.alloc(64).toString('base64') }) },
    logger: silentLogger,
  };
  const req: MigrationRequest = {
    id, name: 'web', host: 'peer', epoch: 1,
    settings: { compress: 'off', warmMemory: false, criuStream: undefined, restoreWhileReceiving: true, maxDowntimeMs: o.maxDowntimeMs === undefined ? 30_000 : o.maxDowntimeMs },
    emit: () => undefined,
  };
  return { source, peer, journal, deps, req };
}

/** Running copies across both hosts (a frozen or held copy does not run). */
export function runningCopies(r: Rig): number {
  return (r.source.running ? 1 : 0) + r.peer.runningCopies;
}
