import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { TsmError } from '../../errors/errors.js';
import { resolveConfigPath } from '../../hosts/config.js';
import type { Runtime } from '../../runtime/context.js';
import type { ChunkStore } from '../../store/chunk-store.js';
import { openStore } from '../../store/open.js';
import { collectGarbage } from '../../store/prune.js';
import { STORE_LOCK_WAIT_MS } from '../../store/put-checkpoint.js';
import { verifyStore } from '../../store/verify-store.js';
import { requireRoot } from '../../util/root.js';
import { humanBytes, table } from '../output.js';
import { print, printJson, runtimeFor } from '../context.js';

export interface StoreFlags {
  store?: string;
  encryptKey?: string;
}

/** Open the store named by --store / --encrypt-key for one command, and close it after. */
export async function withStore<T>(cmd: Command, o: StoreFlags, create: boolean, fn: (store: ChunkStore, rt: Runtime, json: boolean) => Promise<T>): Promise<T> {
  const { rt, json } = runtimeFor(cmd);
  const g = cmd.optsWithGlobals<{ config?: string }>();
  const store = await openStore(rt, { spec: o.store, encryptKey: o.encryptKey, configFile: resolveConfigPath(g.config), create });
  try {
    return await fn(store, rt, json);
  } finally {
    await store.backend.close().catch(() => undefined);
  }
}

const storeOpts = (c: Command): Command =>
  c.option('--store <store>', 'the store: local (default), /PATH, HOST:/PATH or a name from the config').option('--encrypt-key <file>', 'key file of an encrypted store');

export function registerStoreCommands(program: Command): void {
  const st = program.command('store').description('deduplicated checkpoint stores: ls, stats, verify, rm, gc, keygen');
  storeOpts(st.command('ls').description('list the checkpoints in a store').argument('[name]', 'only this container\'s')).action(
    async (name: string | undefined, o: StoreFlags, cmd: Command) =>
      withStore(cmd, o, false, async (store, _rt, json) => {
        const { snapshots, bad, missing } = await store.list(name);
        if (json) return printJson({ checkpoints: snapshots.map(({ checkpoint: c, ...s }) => ({ ...s, frozenMs: c.timings.frozenMs })), unreadable: bad, missing: missing.map((m) => m.id) });
        print(table(['ID', 'CONTAINER', 'CREATED', 'SIZE', 'FROZEN', 'SCHEDULE', 'TAG'], snapshots.map((s) => [
          s.id, s.container, s.createdAt, humanBytes(s.streams.criu.bytes + s.streams.upper.bytes), `${s.checkpoint.timings.frozenMs}ms`, s.schedule ?? '-', s.tag ?? '-',
        ])));
        for (const b of bad) print(`unreadable: ${b.id}: ${b.problem}`);
        for (const m of missing) print(`missing: ${m.id} (${m.container}, taken ${m.createdAt}): the index lists it, the store no longer holds it`);
      }),
  );
  storeOpts(st.command('stats').description('logical and physical size of a store')).action(async (o: StoreFlags, cmd: Command) =>
    withStore(cmd, o, false, async (store, _rt, json) => {
      const { snapshots } = await store.list();
      const phys = await store.backend.stats();
      const logical = snapshots.reduce((n, s) => n + s.streams.criu.bytes + s.streams.upper.bytes, 0);
      const r = { location: store.location, encrypted: store.encrypted, checkpoints: snapshots.length, logicalBytes: logical, physicalBytes: phys.bytes, chunks: phys.chunks, ratio: phys.bytes ? Math.round((logical / phys.bytes) * 100) / 100 : 0 };
      if (json) return printJson(r);
      print(`${r.location}${r.encrypted ? ' (encrypted)' : ''}: ${r.checkpoints} checkpoints, ${humanBytes(logical)} logical, ${humanBytes(phys.bytes)} stored in ${phys.chunks} chunks (${r.ratio}x)`);
    }),
  );
  storeOpts(st.command('verify').description('read back every chunk of a store (or of one checkpoint) and authenticate it with the key; check the index and every checkpoint\'s metadata').argument('[id]')).action(
    async (id: string | undefined, o: StoreFlags, cmd: Command) =>
      withStore(cmd, o, false, async (store, _rt, json) => {
        const r = await verifyStore(store, id ?? null);
        if (json) printJson({ location: store.location, chunks: r.chunks, bytes: r.bytes, checkpoints: r.checkpoints, problems: r.problems });
        if (r.problems.length) {
          throw new TsmError('EINTEGRITY', `${store.location}: ${r.problems.length} problems: ${r.problems.slice(0, 5).join('; ')}${r.problems.length > 5 ? '; …' : ''}`, {
            fix: 'restore from a checkpoint that does not use the damaged chunks (tsmigrate restore NAME --latest skips corrupted ones)',
          });
        }
        if (!json) print(`${store.location}: ok (${r.chunks} chunks authenticated, ${humanBytes(r.bytes)}${id ? '' : `, ${r.checkpoints} checkpoints`})`);
      }),
  );
  storeOpts(st.command('rm').description('remove checkpoints from a store (then collect their chunks)').argument('<ids...>')).action(
    async (ids: string[], o: StoreFlags, cmd: Command) =>
      withStore(cmd, o, false, async (store, _rt, json) => {
        requireRoot('remove checkpoints');
        await store.backend.lock({ timeoutMs: STORE_LOCK_WAIT_MS });
        try {
          for (const id of ids) await store.backend.getSnapshot(store.nameOf(id));
          await store.removeSnapshots(ids);
        } finally {
          await store.backend.unlock();
        }
        const c = await collectGarbage(store);
        if (json) return printJson({ removed: ids, collected: c });
        print(`removed ${ids.length}; freed ${humanBytes(c.bytes)} in ${c.chunks} chunks`);
      }),
  );
  storeOpts(st.command('gc').description('remove chunks no checkpoint references')).action(async (o: StoreFlags, cmd: Command) =>
    withStore(cmd, o, false, async (store, _rt, json) => {
      const c = await collectGarbage(store);
      if (json) return printJson(c);
      print(`freed ${humanBytes(c.bytes)} in ${c.chunks} chunks`);
    }),
  );
  st.command('keygen')
    .description('write a new random key file (0600) for --encrypt-key')
    .argument('<file>')
    .action(async (file: string) => {
      const fh = await fs.open(file, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
        throw new TsmError('EINVAL_ARG', `cannot create ${file}: ${e.code === 'EEXIST' ? 'it exists' : e.code}`, { fix: 'give a new file name; never overwrite a key that encrypts a store' });
      });
      try {
        await fh.writeFile(`${randomBytes(32).toString('hex')}\n`);
      } finally {
        await fh.close();
      }
      print(file);
    });
}
