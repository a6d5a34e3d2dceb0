/**
 * Agent roles through a real sshd (a local test host from scripts/local-hosts.sh):
 * a second client key, restricted in authorized_keys to a forced command
 * `tsmigrate agent --stdio --role store --store-dir DIR`, keeps a store in DIR
 * and nothing else: a store outside DIR, receiving a container, and running
 * any other command are refused; the host's own key still has every role.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isTsmError } from '../../../src/errors/errors.js';
import { getHost, knownHostsFilesFor, loadHostsConfig } from '../../../src/hosts/config.js';
import { sshPeer } from '../../../src/move/connect.js';
import { connectSsh } from '../../../src/ssh/connect.js';
import { STORE_FORMAT, type StoreInfo } from '../../../src/store/backend.js';
import { cli, cliOk, tempRoot } from '../../helpers/cli.js';
import { Rig } from '../../helpers/rig.js';
import { snapshot } from '../../helpers/tree-snapshot.js';
import { MID, beginReq, fakeSigned } from '../../unit/agent/helpers.js';

const A = tempRoot('tsm-roles-');
const CFG = path.join(A, 'config.yaml');
const rig = new Rig();
const STORES = path.join(rig.dir, 'stores');
const VICTIM = path.join(rig.dir, 'victim');
const env = { SSH_AUTH_SOCK: '' };
const TA = (args: string[]) => cliOk(A, ['--config', CFG, ...args], { env, timeoutMs: 120000 });
const RA = (args: string[]) => cli(A, ['--config', CFG, ...args], { env, timeoutMs: 120000 });
const INFO: StoreInfo = { format: STORE_FORMAT, id: '0123456789abcdef0123456789abcdef', createdAt: '2026-01-01T00:00:00.000Z', chunking: { algorithm: 'fastcdc-gear32', min: 8192, avg: 32768, max: 131072 }, encryption: null };
let C = '';

before(async () => {
  const h = await rig.start('roles-c', '127.0.0.10');
  C = h.root;
  const cmd = [...h.addCommand];
  const known = path.join(A, 'known_hosts');
  copyFileSync(cmd[cmd.indexOf('--known-hosts') + 1]!, known);
  cmd[cmd.indexOf('--known-hosts') + 1] = known;
  await TA(cmd);
  // the restricted key: whatever its client asks to run, sshd runs the forced command
  const key = path.join(A, 'store_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tsmigrate-store-only', '-f', key]);
  const hostsDir = rig.env['TSMIGRATE_HOSTS_DIR']!;
  const forced = `${hostsDir}/bin/tsmigrate --root ${C} agent --stdio --role store --store-dir ${STORES}`;
  appendFileSync(path.join(hostsDir, 'roles-c', 'authorized_keys'), `command="${forced}",restrict ${readFileSync(`${key}.pub`, 'utf8').trim()}\n`);
  const url = cmd[cmd.indexOf('roles-c') + 1]!;
  await TA(['host', 'add', 'roles-c-store', url, '--identity', key, '--known-hosts', known]);
  mkdirSync(STORES, { mode: 0o700 });
  mkdirSync(path.join(VICTIM, 'lock'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(VICTIM, 'lock', 'owner'), '999999999\n');
});
after(() => {
  rig.stopAll('roles-c');
  rmSync(A, { recursive: true, force: true });
});

test('the store-only key keeps a store beneath its store directory', async () => {
  const conn = await sshPeer(CFG, 'roles-c-store')();
  try {
    const s = path.join(STORES, 'a', 'web');
    assert.deepEqual(await conn.agent.storeOpen({ path: s, create: INFO }), { info: INFO });
    await conn.agent.storeLock({ path: s, timeoutMs: 0 });
    assert.equal(readFileSync(path.join(s, 'lock', 'owner'), 'utf8').trim().length > 0, true);
    await conn.agent.storeUnlock({ path: s });
    assert.equal(existsSync(path.join(s, 'lock')), false);
  } finally {
    await conn.close();
  }
  const ls = JSON.parse(await TA(['--json', 'store', 'ls', '--store', `roles-c-store:${path.join(STORES, 'a', 'web')}`])) as { checkpoints: unknown[] };
  assert.deepEqual(ls.checkpoints, []);
});

test('the store-only key: a store outside its directory is refused in one line (exit 77), the victim untouched', async () => {
  const before = await snapshot(VICTIM);
  const r = await RA(['store', 'ls', '--store', `roles-c-store:${VICTIM}`]);
  assert.equal(r.code, 77, r.stderr);
  assert.match(r.stderr, /store path \S+victim is outside this host's store directories \(\S+stores\)/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  const conn = await sshPeer(CFG, 'roles-c-store')();
  try {
    await assert.rejects(conn.agent.storeLock({ path: VICTIM, timeoutMs: 0 }), (e) => isTsmError(e, 'EFORBIDDEN'));
    await assert.rejects(conn.agent.storeOpen({ path: path.join(VICTIM, 'x'), create: INFO }), (e) => isTsmError(e, 'EFORBIDDEN'));
  } finally {
    await conn.close();
  }
  assert.deepEqual(await snapshot(VICTIM), before);
});

test('the store-only key cannot receive a container; the host key can ask the same agent anything', async () => {
  const conn = await sshPeer(CFG, 'roles-c-store')();
  try {
    for (const call of [() => conn.agent.begin(beginReq), () => conn.agent.prepare({ migrationId: MID, expect: { images: `sha256:${'c'.repeat(64)}`, upper: [] }, signed: fakeSigned }), () => conn.agent.commit({ migrationId: MID })]) {
      await assert.rejects(call(), (e) => isTsmError(e, 'EFORBIDDEN') && /serves this key as store: \w+ needs the role migrate or restore/.test(e.message));
    }
    // what DR asks every configured host
    assert.deepEqual(await conn.agent.containerStatus({ name: 'web-1' }), { status: 'absent', epochSeen: 0 });
  } finally {
    await conn.close();
  }
  assert.equal(existsSync(path.join(C, 'migrations')), false);
  assert.equal(existsSync(path.join(C, 'containers', 'web-1')), false);
  const full = await sshPeer(CFG, 'roles-c')();
  try {
    assert.deepEqual(await full.agent.status({ migrationId: MID }), { phase: 'unknown' });
  } finally {
    await full.close();
  }
});

test('the forced command runs whatever the client asks: no other command, no --role of its own', async () => {
  const cfg = await loadHostsConfig(CFG);
  const host = getHost(cfg, 'roles-c-store');
  const marker = path.join(rig.dir, 'pwned');
  const session = await connectSsh(host, { knownHostsFiles: knownHostsFilesFor(cfg, host), trustOnFirstUse: false, agent: null });
  try {
    // the agent runs instead, sees its stdin closed and exits
    await session.run(['touch', marker]);
  } finally {
    session.close();
  }
  assert.equal(existsSync(marker), false);
  // a client that asks for roles of its own (`tsmigrate agent --stdio --role migrate --store-dir / agent --stdio`) still gets the forced ones
  const url = host.url;
  await TA(['host', 'add', 'roles-c-sneaky', url, '--identity', host.identity!, '--known-hosts', knownHostsFilesFor(cfg, host)[0]!,
    '--command', `${rig.env['TSMIGRATE_HOSTS_DIR']}/bin/tsmigrate --root ${C} agent --stdio --role migrate --store-dir /`]);
  const conn = await sshPeer(CFG, 'roles-c-sneaky')();
  try {
    await assert.rejects(conn.agent.status({ migrationId: MID }), (e) => isTsmError(e, 'EFORBIDDEN'));
  } finally {
    await conn.close();
  }
  assert.deepEqual(readdirSync(STORES), ['a']);
});
