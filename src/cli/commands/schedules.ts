import { settlePendingAborts } from '../../move/recover.js';
import { sshPeer } from '../../move/connect.js';
import { criuDeadlineSetting } from '../../criu/deadline.js';
import type { Command } from 'commander';
import { TsmError } from '../../errors/errors.js';
import { resolveConfigPath } from '../../hosts/config.js';
import { createRuntime } from '../../runtime/context.js';
import { runDaemon } from '../../schedule/daemon.js';
import { nextDue } from '../../schedule/due.js';
import { ScheduleBook, timingOf, type Schedule } from '../../schedule/schedules.js';
import { readJsonIfExists } from '../../state/atomic.js';
import { resolveRoot } from '../../state/paths.js';
import { ensureStateRoot } from '../../state/root-dir.js';
import { parseStoreSpec } from '../../store/open.js';
import { requireRoot } from '../../util/root.js';
import { table } from '../output.js';
import { print, printJson, runtimeFor } from '../context.js';
import path from 'node:path';
import { writeErrLine } from '../stdio.js';

interface AddFlags {
  every?: string;
  cron?: string;
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  store?: string;
  encryptKey?: string;
  tcpEstablished?: boolean;
}

function count(flag: string, v: string | undefined): number {
  if (v === undefined) return 0;
  if (!/^\d{1,5}$/.test(v)) throw new TsmError('EINVAL_ARG', `invalid ${flag} "${v}"`, { fix: `give a whole number, e.g. ${flag} 3` });
  return Number(v);
}

export function registerScheduleCommands(program: Command): void {
  const sc = program.command('schedule').description('scheduled checkpoints with retention: add, ls, rm (run by tsmigrate daemon)');
  sc.command('add')
    .description('checkpoint a container on a schedule into a store, keeping what the retention policy says')
    .argument('<name>', 'container')
    .option('--every <interval>', 'e.g. 30s, 15m, 1h30m, 1d')
    .option('--cron <expr>', 'five-field cron expression (local time), e.g. "0 * * * *"')
    .option('--keep-last <n>', 'keep the n newest')
    .option('--keep-hourly <n>', 'keep the newest of each of the last n hours')
    .option('--keep-daily <n>', 'keep the newest of each of the last n days')
    .option('--keep-weekly <n>', 'keep the newest of each of the last n weeks')
    .option('--store <store>', 'local (default), /PATH, HOST:/PATH or a name from the config')
    .option('--encrypt-key <file>', 'encrypt the store with this key file')
    .option('--tcp-established', 'checkpoint established TCP connections')
    .action(async (name: string, o: AddFlags, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      requireRoot('add a schedule');
      if (o.store) parseStoreSpec(o.store, rt.paths.root);
      const s: Schedule = {
        container: name,
        every: o.every ?? null,
        cron: o.cron ?? null,
        keep: { keepLast: count('--keep-last', o.keepLast), keepHourly: count('--keep-hourly', o.keepHourly), keepDaily: count('--keep-daily', o.keepDaily), keepWeekly: count('--keep-weekly', o.keepWeekly) },
        store: o.store ?? null,
        encryptKey: o.encryptKey ? path.resolve(o.encryptKey) : null,
        tcpEstablished: Boolean(o.tcpEstablished),
        createdAt: new Date().toISOString(),
      };
      if (!(await rt.store.exists(name))) throw new TsmError('ENOENT_CONTAINER', `no container named "${name}"`, { fix: 'list them with tsmigrate ps' });
      await new ScheduleBook(rt.paths).add(s);
      if (json) printJson(s);
      else print(`${name}: ${s.every ? `every ${s.every}` : `cron "${s.cron}"`}, first run ${nextDue(timingOf(s), null, new Date(s.createdAt)).toISOString()} (run tsmigrate daemon)`);
    });
  sc.command('ls')
    .description('list schedules, their last run and next run')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const all = await new ScheduleBook(rt.paths).list();
      const status = (await readJsonIfExists<{ schedules: Record<string, { lastRun: string | null; lastError: string | null }> }>(path.join(rt.paths.root, 'daemon-status.json')))?.schedules ?? {};
      const rows = all.map((s) => {
        const st = status[s.container];
        const last = st?.lastRun ? new Date(st.lastRun) : null;
        return { ...s, lastRun: st?.lastRun ?? null, nextRun: nextDue(timingOf(s), last, new Date(s.createdAt)).toISOString(), lastError: st?.lastError ?? null };
      });
      if (json) return printJson(rows);
      const keep = (s: Schedule) => Object.entries(s.keep).filter(([, v]) => v > 0).map(([k, v]) => `${k.replace('keep', '').toLowerCase()}=${v}`).join(',');
      print(table(['CONTAINER', 'WHEN', 'KEEP', 'STORE', 'LAST', 'NEXT', 'ERROR'], rows.map((r) => [
        r.container, r.every ? `every ${r.every}` : `cron ${r.cron}`, keep(r), r.store ?? 'local', r.lastRun ?? '-', r.nextRun, r.lastError ?? '-',
      ])));
    });
  sc.command('rm')
    .description('remove a container\'s schedule (its checkpoints stay in the store)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      requireRoot('remove a schedule');
      await new ScheduleBook(rt.paths).remove(name);
      print(name);
    });

  program
    .command('daemon')
    .description('run the schedules (one daemon per state root; SIGTERM finishes the checkpoint in progress, then exits)')
    .action(async (_o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<{ root?: string; config?: string; criuDeadline?: string }>();
      requireRoot('run the daemon');
      const stamp = () => new Date().toISOString();
      ensureStateRoot(resolveRoot(g.root));
      const rt = createRuntime({
        root: resolveRoot(g.root),
        criuDeadline: criuDeadlineSetting(g.criuDeadline, process.env),
        logger: { debug: () => undefined, info: (m) => writeErrLine(`${stamp()} ${m}`), warn: (m) => writeErrLine(`${stamp()} warning: ${m}`) },
      });
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      try {
        await runDaemon(rt, {
          configFile: resolveConfigPath(g.config),
          signal: ac.signal,
          settleMoves: async () =>
            (await settlePendingAborts(rt, (h) => sshPeer(resolveConfigPath(g.config), h, { logger: rt.logger })())).map((a) => `move ${a.migration} of ${a.container}: ${a.action}: ${a.detail}`),
        });
      } finally {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
      }
    });
}
