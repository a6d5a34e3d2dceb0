import { createHash } from 'node:crypto';
import { constants as C } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * sha256 (hex) and size of a file, streamed. With `noFollow` the file must be
 * a regular file and not a symlink (fails with code ELOOP, or ENOTREG for a
 * directory, fifo or device), so that nothing outside is read.
 */
export async function hashFile(file: string, o: { noFollow?: boolean } = {}): Promise<{ sha256: string; size: number }> {
  const fh = await open(file, o.noFollow ? C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK : C.O_RDONLY);
  try {
    if (o.noFollow && !(await fh.stat()).isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'ENOTREG' });
    const h = createHash('sha256');
    let size = 0;
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: h.digest('hex'), size };
  } finally {
    await fh.close();
  }
}
