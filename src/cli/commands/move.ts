import os from 'node:os';
import type { Command } from 'commander';
import { DEFAULT_HOLD_MS, MAX_HOLD_MS, MIN_HOLD_MS } from '../../agent/api.js';
import { guardHold, spawnHoldGuard } from '../../agent/hold.js';
import { MigrationRecords } from '../../agent/migrations.js';
import { LocalAgent } from '../../agent/server.js';
import { formatCriuDeadline } from '../../criu/deadline.js';
import { awaitMover, startFreezeGuard } from '../../move/freeze-guard.js';
import { guardMove, sourceGuardPorts } from '../../move/source-guard.js';
import type { Runtime } from '../../runtime/context.js';
import { guardLogFile } from '../../state/guard-logs.js';
import { loadHostsConfig, resolveConfigPath } from '../../hosts/config.js';
import { agentAccess } from '../../agent/access.js';
import { sshPeer } from '../../move/connect.js';
import { readHistory, type MoveHistoryEntry } from '../../move/history.js';
import { moveContainer, type MoveEvent, type MoveReport } from '../../move/move.js';
import { recoverMoves, settlePendingAborts } from '../../move/recover.js';
import { fmtMs, parseMaxDowntime } from '../../move/plan.js';
import { hostCheck } from '../../move/check.js';
import { spaceLines } from '../../move/peer-check.js';
import { heldText } from '../../move/file-locks.js';
import { TsmError } from '../../errors/errors.js';
import { escapeLine, humanBytes, jsonText, table } from '../output.js';
import { serveAgentOnStdio } from '../agent-stdio.js';
import { print, printJson, runtimeFor } from '../context.js';
import type { CliSeams } from '../main.js';
import { redrawErrLine, writeErr, writeOut } from '../stdio.js';

function renderReport(r: MoveReport): string {
  const d = r.downtime;
  return [
    `moved ${r.name} to ${r.host} (migration ${r.id}, epoch ${r.epoch})`,
    `downtime ${d.totalMs} ms = freeze ${d.freezeMs} + dump ${d.dumpMs} + transfer ${d.transferMs} + restore ${d.restoreMs} + resume ${d.resumeMs}`,
    r.estimate ? `estimated before the freeze: ${fmtMs(r.estimate.totalMs)}; bound ${r.maxDowntimeMs === null ? 'none (--max-downtime off)' : fmtMs(r.maxDowntimeMs)}` : '',
    r.restoreParts.duringTransfer
      ? `restore: during the transfer, as the images arrived (set-up ${r.restoreParts.setupMs} ms, criu ${r.restoreParts.criuMs} ms); ${d.restoreMs} ms of it after the last byte${r.restoreParts.criuAfterLastByteMs === undefined ? '' : ` (criu ${r.restoreParts.criuAfterLastByteMs} ms)`}`
      : `restore: after the transfer (set-up ${r.restoreParts.setupMs} ms, criu ${r.restoreParts.criuMs} ms)`,
    `sent ${humanBytes(r.bytes.images)} memory images (${humanBytes(r.bytes.imagesTar)} before compression), upper layer ${humanBytes(r.bytes.upperBase)} + delta ${humanBytes(r.bytes.upperDelta)}, log ${humanBytes(r.bytes.logs)}${r.bytes.image ? `, image ${humanBytes(r.bytes.image)}` : ''}`,
    `compression: ${r.compression.used ? 'zstd' : 'off'} (measured through the link: plain ${r.compression.linkMBps || '-'} MB/s, with zstd ${r.compression.linkZstdMBps || '-'} MB/s; images on the wire ${Math.round(r.compression.ratio * 100)}% of their size)`,
    `pre-copy: ${r.preCopy}`,
    r.images ? `images: ${r.images.via === 'stream' ? "streamed from CRIU's image streamer, no copy in tmpfs here" : 'written to tmpfs and sent as CRIU wrote them'}${r.images.note ? ` (${r.images.note})` : ''}` : '',
    r.warmMemory ? `memory faulted in before the freeze: ${humanBytes(r.warmMemory.sourceBytes)} here, ${humanBytes(r.warmMemory.peerBytes)} on ${r.host}${r.warmMemory.peerPoolBytes ? `, ${humanBytes(r.warmMemory.peerPoolBytes)} of it a tmpfs file for the largest image` : ''} (${r.warmMemory.ms} ms, outside the downtime)` : '',
    `network: ${r.network.ip ? `kept ${r.network.ip}` : 'none (loopback only)'}`,
    r.carried ? `carried by CRIU: ${[r.carried.tcpEstablished ? 'established TCP connections' : '', r.carried.fileLocks ? `file locks (${r.carried.locks ? heldText(r.carried.locks) : 'if held'})` : ''].filter(Boolean).join(', ') || 'memory and files only'}` : '',
  ].filter(Boolean).join('\n');
}

/** One row of `history`: the figures of a committed move, the reason of any other. */
export function historyRow(e: MoveHistoryEntry): string[] {
  const r = e.report;
  const d = r?.downtime;
  const outcome = e.outcome === 'recovered' && e.finished ? `recovered (${e.finished})` : e.outcome;
  const figures = r && d
    ? [`${d.totalMs}ms`, `${d.freezeMs}`, `${d.dumpMs}`, `${d.transferMs}`, `${d.restoreMs}`, `${d.resumeMs}`, humanBytes(r.bytes.images + r.bytes.upperBase + r.bytes.upperDelta), r.compression.used ? 'yes' : 'no']
    : ['-', '-', '-', '-', '-', '-', '-', '-'];
  return [e.at, e.id, e.name, e.host, outcome, ...figures, e.reason ?? ''];
}

/** The progress line's tail: bytes, rate and, when the total is known, how long is left. */
export function progressText(bytes: number, seconds: number, totalBytes?: number): string {
  if (!bytes) return '';
  const rate = bytes / Math.max(0.001, seconds);
  let s = ` ${humanBytes(bytes)}${totalBytes ? ` of ~${humanBytes(totalBytes)}` : ''} at ${humanBytes(rate)}/s`;
  if (totalBytes && totalBytes > bytes && seconds >= 0.5) s += `, ~${Math.ceil((totalBytes - bytes) / rate)} s left`;
  return s;
}

/** Live progress on a terminal: phase, bytes, rate, time left. */
function progress(json: boolean): (e: MoveEvent) => void {
  if (json) return (e) => writeOut(jsonText({ event: 'progress', ...e, at: Date.now() }) + '\n');
  if (!process.stderr.isTTY) return (e) => e.bytes === undefined && writeErr(`${escapeLine(`${e.phase}${e.message ? `: ${e.message}` : ''}`)}\n`);
  let phase = '';
  let bytes = 0;
  let t0 = Date.now();
  return (e) => {
    if (e.phase !== phase) {
      if (phase) writeErr('\n');
      phase = e.phase;
      bytes = 0;
      t0 = Date.now();
    }
    bytes += e.bytes ?? 0;
    redrawErrLine(`${phase}${progressText(bytes, (Date.now() - t0) / 1000, e.totalBytes)}${e.message ? `: ${e.message}` : ''}`);
  };
}

export function registerMoveCommands(program: Command, setExit: (code: number) => void, seams: CliSeams = {}): void {
  const hostCmd = program.commands.find((c) => c.name() === 'host');
  (hostCmd ?? program)
    .command('check')
    .description('pre-flight a host (and a container) for a move: nothing is frozen or created')
    .argument('<host>')
    .argument('[name]', 'the container you mean to move')
    .action(async (host: string, name: string | undefined, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const g = cmd.optsWithGlobals<{ config?: string }>();
      const r = await hostCheck(rt, name, sshPeer(resolveConfigPath(g.config), host, { logger: rt.logger }));
      const ok = r.hello.criu.ok && (r.preflight?.ok ?? true);
      setExit(ok ? 0 : 1);
      if (json) return printJson(r);
      print(`${host}: ${r.hello.hostname}, tsmigrate ${r.hello.version}, CRIU ${r.hello.criu.version} (${r.hello.criu.ok ? 'criu check ok' : 'criu check FAILS'}), cgroups ${r.hello.cgroup.kind}, pre-copy ${r.hello.memDirtyTrack ? 'available' : 'unavailable (no soft-dirty tracking)'}`);
      if (r.preflight) {
        if (r.preflight.ok) print(`${name}: can move to ${host}${r.preflight.needImage ? ' (its image will be sent first)' : ''}`);
        for (const p of r.preflight.problems) print(`  ${p.check}: ${p.message}; ${p.fix}`);
        for (const l of spaceLines(r.preflight)) print(`  space: ${l}`);
      }
    });

  program
    .command('move')
    .description('live-migrate a running container to another host (see tsmigrate host add)')
    .argument('<name>')
    .argument('<host>')
    .option('--compress <mode>', 'zstd on the wire: auto (from the measured link speed), on, off', 'auto')
    .option('--no-warm-memory', 'do not fault in, before the freeze, the memory the dump and the restore will need')
    .option('--criu-stream <mode>', "images from CRIU's image streamer (criu dump --stream) or from the files it writes to tmpfs: auto (files where tmpfs has room), on, off", 'auto')
    .option('--no-restore-while-receiving', 'restore on the peer after the transfer, not while the images arrive (taking them from tmpfs files only)')
    .option('--max-downtime <duration>', 'the longest the container may stay frozen, e.g. 500ms, 10s, 2m, or off: a move estimated longer is refused before the freeze, one running longer is rolled back', '30s')
    .option('--hold-limit <seconds>', `how long the peer holds its restored copy for this host's decision before it removes it by itself (default ${DEFAULT_HOLD_MS / 1000})`)
    .action(async (name: string, host: string, o: { compress: string; warmMemory: boolean; criuStream: string; restoreWhileReceiving: boolean; maxDowntime: string; holdLimit?: string }, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const maxDowntimeMs = parseMaxDowntime(o.maxDowntime);
      const holdMs = parseHoldLimit(o.holdLimit);
      if (!['auto', 'on', 'off'].includes(o.compress)) throw new TsmError('EINVAL_ARG', `invalid --compress "${o.compress}"`, { fix: 'use auto, on or off' });
      if (!['auto', 'on', 'off'].includes(o.criuStream)) throw new TsmError('EINVAL_ARG', `invalid --criu-stream "${o.criuStream}"`, { fix: 'use auto, on or off' });
      const g = cmd.optsWithGlobals<{ config?: string }>();
      const ac = new AbortController();
      const onSig = () => ac.abort(new TsmError('EINTERRUPTED', 'interrupted', { fix: 'the move was rolled back; run it again when ready' }));
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      try {
        // an abort an earlier move of this container could not deliver goes first
        await settlePendingAborts(rt, (h) => sshPeer(resolveConfigPath(g.config), h, { logger: rt.logger })(), name);
        const report = await moveContainer(
          rt,
          {
            name, host, compress: o.compress as 'auto' | 'on' | 'off', warmMemory: o.warmMemory, ...(o.criuStream === 'auto' ? {} : { criuStream: o.criuStream === 'on' }), restoreWhileReceiving: o.restoreWhileReceiving, maxDowntimeMs, signal: ac.signal, onEvent: progress(json),
            ...(seams.moveFaults ? { faults: seams.moveFaults } : {}),
            ...(holdMs ? { timing: { holdMs } } : {}),
            guardFreeze: (id) => startFreezeGuard({ migrationId: id, argv: guardArgv(rt, ['--config', resolveConfigPath(g.config), 'guard-move', id]), logFile: guardLogFile(rt.paths, id, 'move') }),
          },
          sshPeer(resolveConfigPath(g.config), host, { signal: ac.signal, logger: rt.logger }),
          sshPeer(resolveConfigPath(g.config), host, { logger: rt.logger }),
        );
        if (json) writeOut(jsonText({ event: 'done', report }) + '\n');
        else {
          if (process.stderr.isTTY) writeErr('\n');
          print(renderReport(report));
        }
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });

  program
    .command('recover')
    .description('finish or undo moves cut off by a crash of either side')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const g = cmd.optsWithGlobals<{ config?: string }>();
      const actions = await recoverMoves(rt, (host) => sshPeer(resolveConfigPath(g.config), host, { logger: rt.logger })());
      if (json) return printJson(actions);
      if (!actions.length) return print('nothing to recover');
      print(table(['MIGRATION', 'CONTAINER', 'SIDE', 'ACTION', 'DETAIL'], actions.map((a) => [a.migration, a.container, a.side, a.action, a.detail])));
    });

  program
    .command('guard-move', { hidden: true })
    .description("a move's freeze watchdog (started by tsmigrate move): finishes or undoes the move if the mover dies")
    .argument('<migration>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const said = await awaitMover(process.stdin, process.stdout);
      const { rt } = runtimeFor(cmd);
      const g = cmd.optsWithGlobals<{ config?: string }>();
      const connectTo = (host: string) => sshPeer(resolveConfigPath(g.config), host, { logger: rt.logger })();
      rt.logger.info(`guard ${id}: the mover ${said ? 'let go' : 'is gone (it died, or left the move unfinished)'} at ${new Date().toISOString()}`);
      const r = await guardMove(sourceGuardPorts(rt, { migrationId: id, connectTo, logger: rt.logger }));
      rt.logger.info(`guard ${id}: ${r.outcome} (journal: ${r.phase}) at ${new Date().toISOString()}`);
    });

  program
    .command('guard-hold', { hidden: true })
    .description("a held copy's time limit (started by the agent at prepare): aborts the migration if no decision came by then")
    .argument('<migration>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      const local = new LocalAgent(rt, cmd.parent?.version() ?? '0');
      const phase = await guardHold(rt, new MigrationRecords(rt.paths), id, (m, reason) => local.abortLocked(m, reason), { log: (m) => rt.logger.warn(m) });
      rt.logger.info(`hold guard ${id}: the migration is ${phase} at ${new Date().toISOString()}`);
    });

  program
    .command('history')
    .description('past moves and how each ended (committed, rolled-back, failed, refused, recovered): downtime, bytes, compression, why')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const rows = await readHistory(rt.paths);
      if (json) return printJson(rows);
      print(
        table(
          ['WHEN', 'MIGRATION', 'CONTAINER', 'HOST', 'OUTCOME', 'DOWNTIME', 'FREEZE', 'DUMP', 'TRANSFER', 'RESTORE', 'RESUME', 'SENT', 'ZSTD', 'REASON'],
          rows.map(historyRow),
        ),
      );
    });

  program
    .command('agent')
    .description('serve the migration protocol on stdin/stdout (run by a peer over SSH)')
    .option('--stdio', 'speak on stdin/stdout')
    .option('--role <roles>', 'serve only these roles: migrate, store, restore (comma-separated or repeated; for an authorized_keys forced command)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--store-dir <dir>', 'keep stores only beneath this directory (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action(async (o: { stdio?: boolean; role: string[]; storeDir: string[] }, cmd: Command) => {
      if (!o.stdio) throw new TsmError('EINVAL_ARG', 'agent needs --stdio', { fix: 'it is started by tsmigrate move over SSH' });
      const { rt } = runtimeFor(cmd);
      const configFile = resolveConfigPath(cmd.optsWithGlobals<{ config?: string }>().config);
      // a host set up wrongly answers the client's first call with why, rather than hanging up
      const access = await loadHostsConfig(configFile)
        .then((cfg) => agentAccess({ roles: o.role, storeDirs: o.storeDir }, cfg.agent, `${configFile} agent.storeDirs`))
        .catch((e: unknown) => {
          if (!(e instanceof TsmError)) throw e;
          rt.logger.warn(`agent: ${e.oneLine()}`);
          return { roles: [], storeRoots: [], refuse: new TsmError(e.code, `the agent on ${os.hostname()} cannot serve this key: ${e.message}`, e.fix === undefined ? {} : { fix: `on that host: ${e.fix}` }) };
        });
      const agent = new LocalAgent(rt, cmd.parent?.version() ?? '0', { holdGuard: holdGuardFor(rt), storeRoots: access.storeRoots });
      await serveAgentOnStdio(agent, rt.logger, access);
    });
}

/** A guard's command: this CLI, with the settings it runs under (state root, CRIU deadline), then `args`. */
function guardArgv(rt: Runtime, args: string[]): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!, '--root', rt.paths.root, '--criu-deadline', formatCriuDeadline(rt.criuDeadline), '--verbose', ...args];
}

/** The agent's hold guards (agent/hold.ts): `tsmigrate guard-hold ID`. */
export function holdGuardFor(rt: Runtime): (id: string) => void {
  return (id) => spawnHoldGuard(guardArgv(rt, ['guard-hold', id]), guardLogFile(rt.paths, id, 'hold'));
}

function parseHoldLimit(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || n * 1000 < MIN_HOLD_MS || n * 1000 > MAX_HOLD_MS) {
    throw new TsmError('EINVAL_ARG', `invalid --hold-limit "${s}"`, { fix: `give seconds from ${MIN_HOLD_MS / 1000} to ${MAX_HOLD_MS / 1000}` });
  }
  return Math.round(n * 1000);
}
