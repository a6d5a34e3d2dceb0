/**
 * Real bridge + veth wiring (root only). Uses its own bridge (tsmt0), subnet
 * (10.213.0.0/24) and a temp lease dir. Traffic only goes between the host
 * and namespaces created here; every connect is preceded by assertLocalRoute.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { isTsmError } from '../../../src/errors/errors.js';
import { assertLocalRoute } from '../../../src/network/guard.js';
import { deleteLink, ensureBridge, linkExists } from '../../../src/network/bridge.js';
import { tryParseCidr } from '../../../src/network/cidr.js';
import {
  attachNetwork,
  makeNetworkSettings,
  planNetwork,
  releaseNetwork,
  type NetworkSettings,
} from '../../../src/network/setup.js';
import { isRoot, skipUnless } from '../../helpers/skip.js';

const BRIDGE = 'tsmt0';
const SUBNET = '10.213.0.0/24';
const GATEWAY = '10.213.0.1';

const skip = skipUnless(isRoot, 'needs root (creates a bridge and veths)');

let base = '';
let settings: NetworkSettings;
const children: ChildProcess[] = [];
const nsPids: number[] = [];

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** `unshare --net --fork sleep 30`; returns the pid of the sleeping child (inside the new netns). */
async function startNetns(): Promise<number> {
  const ch = spawn('unshare', ['--net', '--fork', '--kill-child', 'sleep', '30'], { stdio: 'ignore' });
  children.push(ch);
  const ours = await readlink('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    if (ch.pid !== undefined) {
      const tasks = await readdir(`/proc/${ch.pid}/task`).catch(() => [] as string[]);
      for (const t of tasks) {
        const kids = (await readFile(`/proc/${ch.pid}/task/${t}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean);
        const pid = Number(kids[0]);
        if (Number.isInteger(pid) && pid > 0) {
          const theirs = await readlink(`/proc/${pid}/ns/net`).catch(() => ours);
          if (theirs !== ours) {
            nsPids.push(pid);
            return pid;
          }
        }
      }
    }
    await sleep(10);
  }
  throw new Error('unshare child did not appear');
}

function nsexec(pid: number, args: string[]) {
  return execa('nsenter', [`--net=/proc/${pid}/ns/net`, ...args], { timeout: 15_000 });
}

/** Start a node TCP server inside the namespace on `port`; resolves once it listens. */
async function nsListen(pid: number, port: number, reply: string): Promise<ChildProcess> {
  const script = `const net=require('net');net.createServer(s=>{s.end(${JSON.stringify(reply)})}).listen(${port},'0.0.0.0',()=>console.log('ready'))`;
  const ch = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(ch);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('listener inside the namespace did not start')), 10_000);
    ch.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    ch.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`listener exited with ${code}`));
    });
  });
  return ch;
}

/** Connect (after the route guard) and read everything the server sends. */
async function fetchTcp(host: string, port: number): Promise<string> {
  await assertLocalRoute(host, BRIDGE);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, timeout: 5000 });
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => resolve(data));
    s.on('timeout', () => {
      s.destroy();
      reject(new Error(`timeout connecting to ${host}:${port}`));
    });
    s.on('error', reject);
  });
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(() => true, () => false);
}

before(async () => {
  if (skip) return;
  await deleteLink(BRIDGE);
  base = await mkdtemp(path.join(tmpdir(), 'tsm-net-it-'));
  settings = makeNetworkSettings({ bridge: BRIDGE, subnet: SUBNET, ipamBase: base });
});

after(async () => {
  for (const pid of nsPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
  if (skip) return;
  await deleteLink(BRIDGE).catch(() => undefined);
  if (base) await rm(base, { recursive: true, force: true });
});

test('assertLocalRoute refuses off-machine routes', { skip }, async () => {
  await assertLocalRoute('127.0.0.1', BRIDGE);
  await assert.rejects(assertLocalRoute('192.0.2.77', BRIDGE), (e: unknown) => isTsmError(e, 'ENETWORK') && !e.message.includes('\n'));
  await assert.rejects(assertLocalRoute('203.0.113.9', BRIDGE), (e: unknown) => isTsmError(e, 'ENETWORK'));
  await assert.rejects(assertLocalRoute('not-an-ip', BRIDGE), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
});

test('--net bridge: veth on the bridge, reachable both ways, removed on release', { skip }, async () => {
  const pid = await startNetns();
  const owner = { root: path.join(base, 'root-a'), container: 'web' };
  const plan = await planNetwork('bridge', undefined, owner, settings);
  assert.equal(plan.ip, '10.213.0.2');
  const leaseFile = path.join(settings.leaseDir, plan.ip!);
  assert.ok(await exists(leaseFile));

  await attachNetwork(plan, pid);

  // Host side: bridge with the gateway, veth enslaved and up.
  const br = JSON.parse((await execa('ip', ['-j', '-4', 'addr', 'show', 'dev', BRIDGE])).stdout) as Array<{ addr_info: Array<{ local: string; prefixlen: number }> }>;
  assert.deepEqual(br[0]?.addr_info.map((a) => `${a.local}/${a.prefixlen}`), [`${GATEWAY}/24`]);
  const veth = JSON.parse((await execa('ip', ['-j', 'link', 'show', 'dev', plan.hostVeth!])).stdout) as Array<{ master?: string; flags: string[] }>;
  assert.equal(veth[0]?.master, BRIDGE);
  assert.ok(veth[0]?.flags.includes('UP'));

  // Inside: eth0 has the address, lo is up, routes are the subnet and default via the gateway.
  const addr = (await nsexec(pid, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout;
  assert.match(addr, /inet 10\.213\.0\.2\/24 /);
  const lo = JSON.parse((await nsexec(pid, ['ip', '-j', 'link', 'show', 'lo'])).stdout) as Array<{ flags: string[] }>;
  assert.ok(lo[0]?.flags.includes('UP'));
  const routes = (await nsexec(pid, ['ip', '-4', 'route', 'show'])).stdout;
  assert.match(routes, /^default via 10\.213\.0\.1 dev eth0/m);
  assert.match(routes, /^10\.213\.0\.0\/24 dev eth0 .*src 10\.213\.0\.2/m);

  // Host -> container (guarded inside fetchTcp).
  await assertLocalRoute(plan.ip!, BRIDGE);
  const listener = await nsListen(pid, 18080, 'hello from the namespace\n');
  assert.equal(await fetchTcp(plan.ip!, 18080), 'hello from the namespace\n');
  listener.kill('SIGKILL');

  // Container -> host gateway: a host server bound only to the gateway address.
  const server = net.createServer((s) => s.end('hello from the host\n'));
  await new Promise<void>((r) => server.listen(0, GATEWAY, () => r()));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const inside = JSON.parse((await nsexec(pid, ['ip', '-j', 'route', 'get', GATEWAY])).stdout) as Array<{ dev?: string; gateway?: string }>;
    assert.equal(inside[0]?.dev, 'eth0', 'the gateway is on-link inside the namespace');
    assert.equal(inside[0]?.gateway, undefined);
    const script = `const s=require('net').connect(${port},${JSON.stringify(GATEWAY)});let d='';s.on('data',b=>d+=b);s.on('end',()=>{process.stdout.write(d)});s.on('error',e=>{console.error(e.message);process.exit(1)})`;
    const r = await nsexec(pid, [process.execPath, '-e', script]);
    assert.equal(r.stdout, 'hello from the host');
  } finally {
    server.close();
  }

  // Attaching a second container to the existing bridge works too and gets the next address.
  const pid2 = await startNetns();
  const plan2 = await planNetwork('bridge', '10.213.0.20', { root: path.join(base, 'root-b'), container: 'web' }, settings);
  await attachNetwork(plan2, pid2);
  assert.notEqual(plan2.hostVeth, plan.hostVeth);
  const l2 = await nsListen(pid2, 18081, 'second\n');
  assert.equal(await fetchTcp('10.213.0.20', 18081), 'second\n');
  l2.kill('SIGKILL');

  // Release: the veth pair and the lease are gone; a second release is a no-op.
  await releaseNetwork(plan, settings);
  assert.equal(await linkExists(plan.hostVeth!), false);
  assert.equal(await exists(leaseFile), false);
  const after1 = (await nsexec(pid, ['ip', '-o', 'link', 'show'])).stdout;
  assert.doesNotMatch(after1, /eth0/, 'the container end went with the pair');
  await releaseNetwork(plan, settings);
  await releaseNetwork(plan2, settings);
  assert.equal(await linkExists(plan2.hostVeth!), false);
  assert.deepEqual(await readdir(settings.leaseDir), []);
  assert.equal(await linkExists(BRIDGE), true, 'the shared bridge stays');
});

test('--net none: only lo, and it is up', { skip }, async () => {
  const pid = await startNetns();
  const plan = await planNetwork('none', undefined, { root: path.join(base, 'root-a'), container: 'quiet' }, settings);
  await attachNetwork(plan, pid);
  const links = JSON.parse((await nsexec(pid, ['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; flags: string[] }>;
  assert.deepEqual(links.map((l) => l.ifname), ['lo']);
  assert.ok(links[0]?.flags.includes('UP'));
  await releaseNetwork(plan, settings); // nothing to do
});

test('refuses to configure the host namespace', { skip }, async () => {
  await assert.rejects(attachNetwork({ mode: 'none', owner: { root: '/r', container: 'x' } }, process.pid), (e: unknown) => isTsmError(e, 'ENETWORK') && /host network namespace/.test(e.message));
});

test('existing bridge with another subnet is a clear error', { skip }, async () => {
  await ensureBridge(BRIDGE, tryParseCidr(SUBNET)!); // idempotent
  await assert.rejects(ensureBridge(BRIDGE, tryParseCidr('10.214.0.0/24')!), (e: unknown) => {
    assert.ok(isTsmError(e, 'ENETWORK'));
    assert.equal(e.message, `bridge ${BRIDGE} has address ${GATEWAY}/24, expected 10.214.0.1/24 for subnet 10.214.0.0/24`);
    assert.match(e.fix ?? '', /TSMIGRATE_SUBNET/);
    return true;
  });
});
