import type { Command } from 'commander';
import { exportCheckpoint, importCheckpoint } from '../../checkpoint/archive-file.js';
import { checkpointContainer } from '../../checkpoint/checkpoint.js';
import { CheckpointStore } from '../../checkpoint/store.js';
import { TsmError } from '../../errors/errors.js';
import { restoreCheckpoint } from '../../restore/restore.js';
import { requireRoot } from '../../util/root.js';
import { humanBytes, table } from '../output.js';
import { print, printJson, runtimeFor } from '../context.js';

export function registerCheckpointCommands(program: Command): void {
  const ck = program
    .command('checkpoint')
    .description('checkpoint a running container (freeze, CRIU dump, upper-layer snapshot, thaw); see also: checkpoint ls|rm|verify|export|import')
    .argument('[name]', 'container to checkpoint')
    .option('--leave-running', 'keep the container running after the checkpoint (default)')
    .option('--stop', 'stop the container after the checkpoint')
    .option('--tcp-established', 'checkpoint established TCP connections')
    .option('--file-locks', 'checkpoint file locks')
    .option('--tag <tag>', 'a label to find it by')
    .action(async (name: string | undefined, o: { leaveRunning?: boolean; stop?: boolean; tcpEstablished?: boolean; fileLocks?: boolean; tag?: string }, cmd: Command) => {
      if (!name) {
        cmd.help();
        return;
      }
      if (o.stop && o.leaveRunning) throw new TsmError('EINVAL_ARG', '--stop and --leave-running contradict each other', { fix: 'give one of them' });
      const { rt, json } = runtimeFor(cmd);
      const r = await checkpointContainer(rt, { name, stop: Boolean(o.stop), tcpEstablished: Boolean(o.tcpEstablished), fileLocks: Boolean(o.fileLocks), ...(o.tag ? { tag: o.tag } : {}) });
      if (json) printJson(r.manifest);
      else {
        const t = r.manifest.timings;
        print(`${r.manifest.id} (frozen ${t.frozenMs} ms: dump ${t.dumpMs} ms, upper snapshot ${t.snapshotMs} ms; total ${t.totalMs} ms)`);
      }
    });

  const ls = async (container: string | undefined, cmd: Command) => {
    const { rt, json } = runtimeFor(cmd);
    const rows = await new CheckpointStore(rt.paths).list(container);
    if (json) return printJson(rows);
    print(table(['ID', 'CONTAINER', 'CREATED', 'SIZE', 'FROZEN', 'TAG'], rows.map((r) => [r.id, r.container, r.createdAt, humanBytes(r.size), `${r.frozenMs}ms`, r.tag ?? '-'])));
  };
  program.command('checkpoints').description('list checkpoints').argument('[name]', 'only this container\'s').action((n: string | undefined, _o: unknown, cmd: Command) => ls(n, cmd));
  ck.command('ls').description('list checkpoints').argument('[name]').action((n: string | undefined, _o: unknown, cmd: Command) => ls(n, cmd));
  ck.command('rm')
    .description('remove a checkpoint')
    .argument('<ids...>')
    .action(async (ids: string[], _o: unknown, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      requireRoot('remove a checkpoint');
      const store = new CheckpointStore(rt.paths);
      for (const id of ids) {
        await store.remove(id);
        print(id);
      }
    });
  ck.command('verify')
    .description('check every blob of a checkpoint against its manifest')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const problems = await new CheckpointStore(rt.paths).verify(id);
      if (json) printJson({ id, ok: problems.length === 0, problems });
      if (problems.length) {
        throw new TsmError('EINTEGRITY', `checkpoint ${id} is corrupted: ${problems.join('; ')}`, { fix: 'remove it (tsmigrate checkpoint rm) and use another' });
      }
      if (!json) print(`${id}: ok`);
    });
  ck.command('export')
    .description('write a checkpoint to one .tar.zst file')
    .argument('<id>')
    .argument('<file>')
    .action(async (id: string, file: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const r = await exportCheckpoint(new CheckpointStore(rt.paths), id, file);
      if (json) printJson({ id, file, ...r });
      else print(`${file} (${humanBytes(r.bytes)}, sha256 ${r.sha256})`);
    });
  ck.command('import')
    .description('add an exported checkpoint file to this host\'s store (verified)')
    .argument('<file>')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      requireRoot('import a checkpoint');
      const m = await importCheckpoint(new CheckpointStore(rt.paths), file);
      if (json) printJson(m);
      else print(m.id);
    });

  program
    .command('restore')
    .description('restore a checkpoint (verified first); --name restores a clone beside the original')
    .argument('<checkpoint>', 'checkpoint id')
    .option('--name <name>', 'restore under a new name (a clone: new IP, TCP connections not carried)')
    .action(async (id: string, o: { name?: string }, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const r = await restoreCheckpoint(rt, { checkpoint: id, ...(o.name ? { name: o.name } : {}) });
      if (json) printJson({ name: r.config.name, checkpoint: r.manifest.id, ms: Math.round(r.ms) });
      else print(r.config.name);
    });
}
