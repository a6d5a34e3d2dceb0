import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const STDIO = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/cli/stdio.js')).href;

test('writes to a stdout and stderr whose readers are gone: no crash, the streams marked broken, nothing more written, the exit code is the program\'s', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsm-stdio-'));
  try {
    const result = path.join(dir, 'result.json');
    const script = `
      import { writeFileSync } from 'node:fs';
      import { guardStdio, writeOut, writeErr, isBroken } from ${JSON.stringify(STDIO)};
      guardStdio();
      setTimeout(() => {
        writeOut('a\\n'.repeat(1000));
        writeErr('b\\n');
        setTimeout(() => {
          writeFileSync(${JSON.stringify(result)}, JSON.stringify([isBroken(process.stdout), isBroken(process.stderr), writeOut('c\\n'), writeErr('d\\n')]));
          process.exitCode = 3;
        }, 200);
      }, 300);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    child.stderr.destroy();
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    assert.equal(code, 3);
    assert.deepEqual(JSON.parse(readFileSync(result, 'utf8')), [true, true, false, false]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
