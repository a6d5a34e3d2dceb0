/**
 * Names, tags, commands and reasons written on disk by someone other than
 * tsmigrate (an imported checkpoint, a peer's record, a hand-edited file),
 * carrying terminal escapes: whatever the CLI prints of them holds no raw ESC,
 * C1 CSI or bidi override, and its JSON still parses to the same strings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cli, tempRoot } from '../../helpers/cli.js';

const OSC = '\x1b]0;owned\x07';
const CLEAR = '\x1b[2J\x1b[H';
const C1 = '\u009b31m';
const BIDI = '\u202e';
const EVIL = `${OSC}${CLEAR}evil${C1}${BIDI}txt.sh`;
// eslint-disable-next-line no-control-regex
const RAW = /[\x1b\x07\u009b\u202e]/;

function craft(root: string): void {
  const id = 'web-20260101t000000z-abcd';
  mkdirSync(path.join(root, 'checkpoints', id), { recursive: true });
  const blob = (b: string) => ({ file: `${b}.tar.zst`, sha256: '0'.repeat(64), size: 1, compression: 'zstd' });
  writeFileSync(path.join(root, 'checkpoints', id, 'manifest.json'), JSON.stringify({
    format: 'tsmigrate-checkpoint/1', id, tag: EVIL, createdAt: `2026-01-01T00:00:00Z${CLEAR}`,
    container: { name: EVIL, command: ['sh'] }, image: { name: EVIL, digest: `sha256:${'0'.repeat(64)}` },
    network: null, stdio: { stdout: 'pipe:[1]', stderr: 'pipe:[2]' },
    criu: { version: '4.2', options: { tcpEstablished: false, fileLocks: false, leaveRunning: false } },
    host: { kernel: EVIL, arch: 'x86_64', hostname: EVIL },
    timings: { frozenMs: 1, dumpMs: 1, snapshotMs: 0, packMs: 0, totalMs: 1 },
    blobs: { criu: blob('criu'), upper: blob('upper') },
  }));
  const c = path.join(root, 'containers', 'web');
  mkdirSync(c, { recursive: true });
  writeFileSync(path.join(c, 'config.json'), JSON.stringify({
    name: EVIL, image: { name: EVIL, digest: `sha256:${'0'.repeat(64)}` }, command: [EVIL, '--flag'], env: [`X=${EVIL}`],
    workdir: '/', hostname: 'web', limits: {}, net: { mode: 'none' }, createdAt: '2026-01-01T00:00:00Z',
  }));
  writeFileSync(path.join(c, 'state.json'), JSON.stringify({ status: 'stopped', cgroupParent: 'tsmigrate', rootfs: { upper: '/nonexistent/u', work: '/nonexistent/w', merged: '/nonexistent/m', lower: '/nonexistent/l' } }));
  writeFileSync(path.join(c, 'exit.json'), JSON.stringify({ exitCode: 0, signal: EVIL, exitedAt: '2026-01-01T00:00:00Z' }));
  mkdirSync(path.join(root, 'migrations'), { recursive: true });
  writeFileSync(path.join(root, 'migrations', 'history.jsonl'), JSON.stringify({ id: `m-${OSC}`, name: EVIL, host: EVIL, outcome: 'refused', reason: `peer said: ${EVIL}\nforged line`, at: CLEAR }) + '\n');
}

test('checkpoints, ps, inspect, history and error lines print crafted escapes escaped; JSON keeps the strings', async () => {
  const root = tempRoot('tsm-escape-');
  try {
    craft(root);
    const runs = {
      checkpoints: await cli(root, ['checkpoints']),
      checkpointsJson: await cli(root, ['--json', 'checkpoints']),
      ps: await cli(root, ['ps']),
      psJson: await cli(root, ['--json', 'ps']),
      inspect: await cli(root, ['inspect', 'web']),
      history: await cli(root, ['history']),
      // an error line quoting the name from the record: cannot freeze a stopped container "<name>"
      freeze: await cli(root, ['freeze', 'web']),
    };
    for (const [what, r] of Object.entries(runs)) {
      assert.doesNotMatch(r.stdout, RAW, `${what}: stdout holds a raw escape: ${JSON.stringify(r.stdout)}`);
      assert.doesNotMatch(r.stderr, RAW, `${what}: stderr holds a raw escape: ${JSON.stringify(r.stderr)}`);
    }
    // the rows are there, shown escaped
    const shown = '\\x1b]0;owned\\x07\\x1b[2J\\x1b[Hevil\\x9b31m\\u202etxt.sh';
    assert.equal(runs.ps.code, 0, runs.ps.stderr);
    assert.ok(runs.ps.stdout.includes(shown), runs.ps.stdout);
    assert.equal(runs.history.code, 0, runs.history.stderr);
    assert.ok(runs.history.stdout.includes(`peer said: ${shown}\\x0aforged line`), runs.history.stdout);
    assert.equal(runs.history.stdout.trim().split('\n').length, 2, 'a newline in a reason does not forge a row');
    assert.equal(runs.freeze.code !== 0, true);
    assert.ok(runs.freeze.stderr.includes(shown), runs.freeze.stderr);
    assert.equal(runs.freeze.stderr.trim().split('\n').length, 1, runs.freeze.stderr);
    // JSON output: parses, and holds the crafted strings as they are
    assert.equal((JSON.parse(runs.psJson.stdout) as Array<{ image: string }>)[0]?.image, EVIL);
    assert.equal((JSON.parse(runs.inspect.stdout) as { config: { name: string } }).config.name, EVIL);
    // a checkpoint the manifest validator lets through is listed escaped; one it refuses is not listed at all
    const listed = JSON.parse(runs.checkpointsJson.stdout) as Array<{ tag: string }>;
    if (listed.length) {
      assert.equal(listed[0]?.tag, EVIL);
      assert.ok(runs.checkpoints.stdout.includes(shown), runs.checkpoints.stdout);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
