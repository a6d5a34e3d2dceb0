import { settleBefore } from '../settle.js';
import type { Command } from 'commander';
import { exportCheckpoint, importCheckpoint } from '../../checkpoint/archive-file.js';
import { checkpointContainer } from '../../checkpoint/checkpoint.js';
import { CheckpointStore } from '../../checkpoint/store.js';
import { TsmError } from '../../errors/errors.js';
import { restoreCheckpoint } from '../../restore/restore.js';
import { requireRoot } from '../../util/root.js';
import { humanBytes, table } from '../output.js';
import { checkpointToStore } from '../../store/put-checkpoint.js';
import { validateName } from '../../util/name.js';
import { withStore, type StoreFlags } from './stores.js';
import { restoreFromStoreCommand } from './dr.js';
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
    .option('--store <store>', 'write it deduplicated into a store: local, /PATH, HOST:/PATH or a name from the config')
    .option('--encrypt-key <file>', 'encrypt the store with this key (AES-256-GCM); see store keygen')
    .action(async (name: string | undefined, o: { leaveRunning?: boolean; stop?: boolean; tcpEstablished?: boolean; fileLocks?: boolean; tag?: string } & StoreFlags, cmd: Command) => {
      if (!name) {
        cmd.help();
        return;
      }
      if (o.stop && o.leaveRunning) throw new TsmError('EINVAL_ARG', '--stop and --leave-running contradict each other', { fix: 'give one of them' });
      if (o.encryptKey && !o.store) throw new TsmError('EINVAL_ARG', '--encrypt-key needs --store', { fix: 'add --store local (or another store)' });
      if (o.store) {
        validateName('container', name);
        requireRoot('checkpoint a container');
        return withStore(cmd, o, true, async (store, rt, json) => {
          const r = await checkpointToStore(rt, store, { name, stop: Boolean(o.stop), tcpEstablished: Boolean(o.tcpEstablished), fileLocks: Boolean(o.fileLocks), ...(o.tag ? { tag: o.tag } : {}) });
          if (json) return printJson({ id: r.meta.id, store: store.location, frozenMs: r.meta.checkpoint.timings.frozenMs, logicalBytes: r.counters.logical, addedBytes: r.addedBytes, newChunks: r.counters.newChunks, chunks: r.counters.chunks, storeMs: Math.round(r.storeMs) });
          print(`${r.meta.id} in ${store.location} (frozen ${r.meta.checkpoint.timings.frozenMs} ms; ${humanBytes(r.counters.logical)} logical, ${humanBytes(r.addedBytes)} added: ${r.counters.newChunks} of ${r.counters.chunks} chunks new)`);
        });
      }
      const { rt, json } = runtimeFor(cmd);
      await settleBefore(cmd, rt, name);
      const r = await checkpointContainer(rt, { name, stop: Boolean(o.stop), tcpEstablished: Boolean(o.tcpEstablished), fileLocks: Boolean(o.fileLocks), ...(o.tag ? { tag: o.tag } : {}) });
      if (json) printJson(r.manifest);
      else {
        const t = r.manifest.timings;
        print(`${r.manifest.id} (frozen ${t.frozenMs} ms: dump ${t.dumpMs} ms, upper snapshot ${t.snapshotMs} ms; total ${t.totalMs} ms)`);
      }
    });

  const ls = async (container: string | undefined, cmd: Command) => {
    const { rt, json } = runtimeFor(cmd);
    const rows = await new CheckpointStore(rt.paths, rt.signing).list(container);
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
      const store = new CheckpointStore(rt.paths, rt.signing);
      for (const id of ids) {
        await store.remove(id);
        print(id);
      }
    });
  ck.command('verify')
    .description('check the signature (by a trusted key) and every blob of a checkpoint')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const problems = await new CheckpointStore(rt.paths, rt.signing).verify(id);
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
      const r = await exportCheckpoint(new CheckpointStore(rt.paths, rt.signing), id, file);
      if (json) printJson({ id, file, ...r });
      else print(`${file} (${humanBytes(r.bytes)}, sha256 ${r.sha256})`);
    });
  ck.command('import')
    .description('add an exported checkpoint file to this host\'s store (verified)')
    .argument('<file>')
    .action(async (file: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      requireRoot('import a checkpoint');
      const m = await importCheckpoint(new CheckpointStore(rt.paths, rt.signing), file);
      if (json) printJson(m);
      else print(m.id);
    });

  program
    .command('restore')
    .description('restore a checkpoint: an ID from this host\'s checkpoints, or NAME (--latest | --at TIME | CHECKPOINT) from a store, on this host or --on HOST')
    .argument('<name-or-id>', 'a checkpoint id (this host\'s checkpoints), or the container NAME with --latest, --at or a store checkpoint id')
    .argument('[checkpoint]', 'with NAME: the store checkpoint to restore')
    .option('--name <name>', 'restore under a new name (a clone: new IP, TCP connections not carried); this host\'s checkpoints only')
    .option('--latest', 'the newest good checkpoint of NAME in the store (corrupted ones are skipped with a warning)')
    .option('--at <time>', 'the newest checkpoint taken at or before TIME (ISO 8601, or 2h for two hours ago)')
    .option('--from <store>', 'the store: local (default), /PATH, HOST:/PATH or a name from the config')
    .option('--on <host>', 'restore on this host from the config (default: here)')
    .option('--force', 'restore even if NAME may still run on a host that cannot be asked, or runs somewhere')
    .option('--encrypt-key <file>', 'key file of an encrypted store')
    .action(async (first: string, second: string | undefined, o: RestoreFlags, cmd: Command) => {
      if (o.latest || o.at || o.from || o.on || second || o.force || o.encryptKey) return restoreFromStoreCommand(first, second, o, cmd);
      const { rt, json } = runtimeFor(cmd);
      const r = await restoreCheckpoint(rt, { checkpoint: first, ...(o.name ? { name: o.name } : {}) });
      if (json) printJson({ name: r.config.name, checkpoint: r.manifest.id, ms: Math.round(r.ms) });
      else print(r.config.name);
    });
}

export interface RestoreFlags {
  name?: string;
  latest?: boolean;
  at?: string;
  from?: string;
  on?: string;
  force?: boolean;
  encryptKey?: string;
}
