/**
 * `tsmigrate agent --stdio` as sshd runs it for a key (the built CLI, stdio
 * pipes): its roles come from its argv and the host's config, and a host set
 * up wrongly answers the first call with why instead of hanging up.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION } from '../../../src/agent/api.js';
import { FrameDecoder, FrameKind, encodeFrame, type Frame } from '../../../src/agent/protocol/frames.js';
import { CLI } from '../../helpers/cli.js';

const T = mkdtempSync(path.join(tmpdir(), 'tsm-agentcmd-'));
after(() => rmSync(T, { recursive: true, force: true }));

/** Run the agent with `args`, send hello then `method`, return both replies. */
async function ask(args: string[], config: string, method: string, params: unknown): Promise<Array<Record<string, unknown>>> {
  const cfg = path.join(T, `config-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(cfg, config);
  const child = spawn(process.execPath, [CLI, '--root', path.join(T, 'root'), '--config', cfg, 'agent', '--stdio', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const dec = new FrameDecoder();
  const replies: Array<Record<string, unknown>> = [];
  let enough!: () => void;
  const answered = new Promise<void>((r) => (enough = r));
  child.stdout.pipe(dec).on('data', (f: Frame) => {
    replies.push(JSON.parse(f.payload.toString()) as Record<string, unknown>);
    if (replies.length === 2) enough();
  });
  dec.on('error', () => {});
  child.stdout.on('end', () => enough()); // the agent ended its side (a refusal closes the connection)
  const closed = new Promise((r) => child.on('close', r));
  child.stdin.write(encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify({ type: 'call', id: 1, method: 'hello', params: { protocol: PROTOCOL_VERSION, tool: 'test', version: '0' } }))));
  child.stdin.write(encodeFrame(FrameKind.JSON, 0, Buffer.from(JSON.stringify({ type: 'call', id: 2, method, params }))));
  // hanging up ends the agent: only once both calls are answered (or it closed by itself)
  await Promise.race([answered, closed]);
  child.stdin.end();
  await closed;
  return replies.filter((r) => r['id'] !== 0);
}

test('a store role without a store directory: the first call is answered with the fix, nothing more is served', async () => {
  const r = await ask(['--role', 'store'], '', 'storeStats', { path: path.join(T, 's') });
  assert.equal(r.length, 1, JSON.stringify(r));
  assert.equal(r[0]!['code'], 'ECONFIG');
  assert.match(String(r[0]!['message']), /cannot serve this key: the agent serves the store role to a restricted key, but no store directory is configured/);
  assert.match(String(r[0]!['fix']), /on that host: add --store-dir DIR to the forced command/);
});

test('a --role the config does not allow is refused at the greeting', async () => {
  const r = await ask(['--role', 'migrate'], 'agent:\n  roles: [store]\n  storeDirs: [/srv/x]\n', 'status', { migrationId: 'mig-0123456789' });
  assert.equal(r[0]!['code'], 'EFORBIDDEN');
  assert.match(String(r[0]!['message']), /--role migrate is not allowed by this host's config \(agent.roles: store\)/);
});

test("roles from argv narrow the config's; a method outside them is refused, the connection goes on", async () => {
  const stores = path.join(T, 'stores');
  const r = await ask(['--role', 'store', '--store-dir', stores], 'agent:\n  roles: [store, migrate]\n', 'status', { migrationId: 'mig-0123456789' });
  assert.equal(r[0]!['type'], 'result');
  assert.equal(r[1]!['code'], 'EFORBIDDEN');
  assert.match(String(r[1]!['message']), /serves this key as store: status needs the role migrate or restore/);
  const ok = await ask([], `agent:\n  roles: [migrate]\n`, 'status', { migrationId: 'mig-0123456789' });
  assert.deepEqual(ok.map((x) => x['type']), ['result', 'result']);
});
