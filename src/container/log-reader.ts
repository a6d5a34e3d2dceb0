import { promises as fs, type promises as fsp } from 'node:fs';
import path from 'node:path';
import { listLogFiles } from './log-files.js';

interface Open {
  fh: fsp.FileHandle;
  ino: number;
  pos: number;
}

/**
 * Reads a container's log files in order, oldest first, and on each catchUp()
 * what was written since, across rotations (as tail -F does): the file being
 * read is held open, so its end is read even after the supervisor renamed it
 * or the rotation removed it, then the files newer than it follow. The
 * supervisor renames container.log away and then creates the new one, so a
 * file newer than ours proves that nothing more is written to ours.
 */
export class LogReader {
  private cur: Open | undefined;
  constructor(private readonly dir: string, private readonly write: (b: Buffer) => void) {}

  async catchUp(): Promise<void> {
    if (this.cur) await this.drain(this.cur);
    // a few rounds: files may be renamed while we list and open them
    for (let round = 0; round < 8; round++) {
      const files = await listLogFiles(this.dir);
      const at = this.cur ? files.findIndex((f) => f.ino === this.cur!.ino) : -1;
      // ours gone (rotated out): every file left is newer
      const newer = files.slice(at + 1);
      if (newer.length === 0) return;
      let moved = true;
      for (const f of newer) {
        const fh = await fs.open(path.join(this.dir, f.name), 'r').catch(() => undefined);
        const ino = fh ? (await fh.stat()).ino : undefined;
        if (!fh || ino !== f.ino) {
          await fh?.close();
          moved = false;
          break; // renamed meanwhile: list again
        }
        if (this.cur) {
          await this.drain(this.cur);
          await this.cur.fh.close();
        }
        this.cur = { fh, ino: f.ino, pos: 0 };
        await this.drain(this.cur);
      }
      if (moved) return;
    }
  }

  async close(): Promise<void> {
    await this.cur?.fh.close();
    this.cur = undefined;
  }

  private async drain(c: Open): Promise<void> {
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const { bytesRead } = await c.fh.read(buf, 0, buf.length, c.pos);
      if (bytesRead === 0) return;
      this.write(Buffer.from(buf.subarray(0, bytesRead)));
      c.pos += bytesRead;
    }
  }
}
