import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../../bench/lib/node-flags.js';
import { CLI, REPO } from '../../helpers/cli.js';

/** the flags scripts/node-flags.sh gives every shell launcher */
function shellFlags(): string[] {
  const m = /^TSM_NODE_FLAGS="([^"]*)"$/m.exec(readFileSync(path.join(REPO, 'scripts/node-flags.sh'), 'utf8'));
  assert.ok(m, 'scripts/node-flags.sh sets TSM_NODE_FLAGS');
  return m[1]!.split(/\s+/).filter(Boolean);
}

test('the CLI #! line, the shell launchers and the move benchmark pass node the same flags', () => {
  const shebang = readFileSync(CLI, 'utf8').split('\n')[0]!;
  assert.match(shebang, /^#!\/usr\/bin\/env -S node( |$)/);
  const cli = shebang.replace(/^#!\/usr\/bin\/env -S node/, '').split(/\s+/).filter(Boolean);
  assert.deepEqual(cli, shellFlags());
  assert.deepEqual(NODE_FLAGS, shellFlags());
  for (const script of ['scripts/setup.sh', 'scripts/local-hosts.sh', 'scripts/demo.sh']) {
    const text = readFileSync(path.join(REPO, script), 'utf8');
    assert.match(text, /\. "\$REPO\/scripts\/node-flags\.sh"/, `${script} sources node-flags.sh`);
    for (const line of text.split('\n').filter((l) => /\bnode\b.*dist\/src\/cli\/main\.js/.test(l) && !/^\s*#|\[ -f/.test(l))) {
      assert.match(line, /\$TSM_NODE_FLAGS/, `${script} runs the CLI with the flags: ${line.trim()}`);
    }
  }
});

test('the CLI starts through its #! line as the kernel runs it (env -S node with the flags)', () => {
  const shebang = readFileSync(CLI, 'utf8').split('\n')[0]!;
  const [interp, ...args] = shebang.slice(2).split(' ');
  const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  // env -S splits the rest of the line, as it does for a #! line
  const out = execFileSync(interp!, [args[0]!, args.slice(1).join(' '), CLI, '--version'], { encoding: 'utf8', env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env['PATH'] ?? ''}` } });
  assert.equal(out.trim(), pkg.version);
});
