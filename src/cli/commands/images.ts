import type { Command } from 'commander';
import { importImage, listImages, removeImage } from '../../image/store.js';
import { requireRoot } from '../../util/root.js';
import { humanBytes, table } from '../output.js';
import { print, printJson, runtimeFor } from '../context.js';

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('manage images (root filesystems)');
  image
    .command('import')
    .description('import a rootfs directory or a tar file (plain, gzip or zstd; e.g. from docker export)')
    .argument('<name>')
    .argument('<src>')
    .action(async (name: string, src: string, _o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      requireRoot('import an image');
      const r = await importImage(rt.paths, name, src, { log: rt.logger });
      if (json) printJson(r);
      else print(`${r.name} ${r.digest}${r.reused ? ' (content already stored)' : ''}${r.skipped.length ? ` (${r.skipped.length} device nodes skipped)` : ''}`);
    });
  image
    .command('ls')
    .description('list images')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const rows = await listImages(rt.paths, rt.logger);
      if (json) return printJson(rows);
      print(table(['NAME', 'ID', 'SIZE', 'FILES', 'IMPORTED'], rows.map((r) => [r.name, r.id, humanBytes(r.size), String(r.files), r.importedAt])));
    });
  image
    .command('rm')
    .description('remove an image (refused while a container uses it)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      requireRoot('remove an image');
      await removeImage(rt.paths, name, (digest) => rt.store.containersUsingImage(digest), rt.logger);
      print(name);
    });
}
