/**
 * The cgroup v2 device filter against the REAL kernel (needs root and a
 * cgroup2 mount: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on
 * hybrid ones, where BPF device programs are enforced as well). A probe
 * process is moved into a test cgroup and asked to open device nodes; the
 * test attaches programs to that cgroup and checks what the kernel allows.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { attachDeviceFilter, deviceFilterIds } from '../../../src/cgroup/device-filter.js';
import { deviceProgram, encodeProgram } from '../../../src/cgroup/device-program.js';
import { detectLayout } from '../../../src/cgroup/detect.js';
import { removeCgroupDir } from '../../../src/cgroup/fsutil.js';
import { createCgroupManager } from '../../../src/cgroup/manager.js';
import { isTsmError } from '../../../src/errors/errors.js';
import { bpfDeviceProgAttach, bpfDeviceProgLoad, constants, mknod } from '../../../src/native/native.js';
import { DEFAULT_DEVICE_RULES, type DeviceRule } from '../../../src/security/devices.js';

const layout = detectLayout();
const V2 = layout.v2Mount;
const tag = randomBytes(4).toString('hex');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'tsm-devfilter-'));
const dirs: string[] = [];
const probes: Probe[] = [];

after(async () => {
  for (const p of probes) await p.stop();
  for (const d of dirs.reverse()) await removeCgroupDir(d, Date.now() + 3000);
  rmSync(tmp, { recursive: true, force: true });
});

function cgroupDir(): string {
  assert.ok(V2, 'this host mounts cgroup2');
  const d = path.join(V2, `tsmigrate-devtest-${tag}-${dirs.length}`);
  mkdirSync(d);
  dirs.push(d);
  return d;
}

/** A node child that opens what it is asked to, and runs mknod(1), from inside its cgroup. */
const PROBE = `
const fs = require('fs');
const { spawnSync } = require('child_process');
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const q = JSON.parse(l);
  let r;
  try {
    if (q.op === 'open') {
      const fd = fs.openSync(q.path, q.flags);
      if (q.read) fs.readSync(fd, Buffer.alloc(q.read));
      fs.closeSync(fd);
      r = 'ok';
    } else {
      const m = spawnSync('mknod', [q.path, q.type, String(q.major), String(q.minor)], { encoding: 'utf8' });
      r = m.status === 0 ? 'ok' : /not permitted/.test(m.stderr) ? 'EPERM' : m.stderr.trim();
      if (m.status === 0) fs.unlinkSync(q.path);
    }
  } catch (e) {
    r = e.code;
  }
  process.stdout.write(JSON.stringify(r) + '\\n');
});
`;

class Probe {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: string[] = [];
  private waiting: ((s: string) => void) | undefined;

  constructor() {
    this.child = spawn(process.execPath, ['-e', PROBE], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      const w = this.waiting;
      this.waiting = undefined;
      if (w) w(JSON.parse(l) as string);
      else this.replies.push(JSON.parse(l) as string);
    });
    probes.push(this);
  }

  get pid(): number {
    return this.child.pid!;
  }

  private ask(q: object): Promise<string> {
    this.child.stdin.write(JSON.stringify(q) + '\n');
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** 'ok' or the errno code of open(path, flags) (and reading `read` bytes). */
  open(p: string, flags: 'r' | 'w' | 'r+' = 'r', read = 0): Promise<string> {
    return this.ask({ op: 'open', path: p, flags, read });
  }

  mknod(type: 'c' | 'b', major: number, minor: number): Promise<string> {
    return this.ask({ op: 'mknod', path: path.join(tmp, `node-${randomBytes(3).toString('hex')}`), type, major, minor });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await gone;
  }
}

/** A probe already inside `dir`. */
function probeIn(dir: string): Probe {
  const p = new Probe();
  writeFileSync(path.join(dir, 'cgroup.procs'), String(p.pid));
  return p;
}

/** A block node 1:3 (no such block driver: opening it past the cgroup check gives ENXIO). */
const blockNode = (() => {
  let made: string | undefined;
  return () => {
    if (made) return made;
    made = path.join(tmp, 'blk-1-3');
    mknod(made, constants.S_IFBLK | 0o600, 1, 3);
    return made;
  };
})();

const KMSG = '/dev/kmsg'; // c 1:11, not in the default list
const kmsgRead: DeviceRule = { type: 'c', major: 1, minor: 11, access: 'r' };

test('the default allow-list: standard nodes open, others fail with EPERM, mknod stays allowed', async () => {
  const dir = cgroupDir();
  const p = probeIn(dir);
  // without a filter the probe may open them all: what fails below fails because of the program
  assert.equal(await p.open(KMSG), 'ok');
  assert.equal(await p.open(blockNode()), 'ENXIO');

  const id = await attachDeviceFilter(dir, DEFAULT_DEVICE_RULES);
  assert.deepEqual(deviceFilterIds(dir), [id]);
  assert.equal(await p.open('/dev/null', 'r+'), 'ok');
  assert.equal(await p.open('/dev/urandom', 'r', 16), 'ok');
  assert.equal(await p.open('/dev/zero', 'r', 16), 'ok');
  assert.equal(await p.open(KMSG), 'EPERM');
  assert.equal(await p.open(blockNode()), 'EPERM', 'a block node with the numbers of an allowed char node');
  if (existsSync('/dev/loop0')) assert.equal(await p.open('/dev/loop0'), 'EPERM');
  assert.equal(await p.mknod('c', 1, 11), 'ok', 'c *:* m');
  assert.equal(await p.mknod('b', 7, 0), 'ok', 'b *:* m');
  // the test process itself is outside the cgroup and unaffected
  closeSync(openSync(KMSG, 'r'));
});

test('a rule for a device allows it, with only the access it grants', async () => {
  const dir = cgroupDir();
  const p = probeIn(dir);
  await attachDeviceFilter(dir, DEFAULT_DEVICE_RULES);
  assert.equal(await p.open(KMSG), 'EPERM');
  const id = await attachDeviceFilter(dir, [...DEFAULT_DEVICE_RULES, kmsgRead, { type: 'b', major: 1, minor: 3, access: 'r' }]);
  assert.deepEqual(deviceFilterIds(dir), [id]);
  assert.equal(await p.open(KMSG), 'ok');
  assert.equal(await p.open(KMSG, 'w'), 'EPERM', 'only read was granted');
  assert.equal(await p.open(blockNode()), 'ENXIO', 'past the filter: the kernel has no such block driver');
});

test('re-applying replaces the program rather than stacking it, also over several stacked ones', async () => {
  const dir = cgroupDir();
  const p = probeIn(dir);
  // narrower first: only /dev/null, no mknod
  const first = await attachDeviceFilter(dir, [{ type: 'c', major: 1, minor: 3, access: 'rwm' }]);
  assert.equal(await p.open('/dev/urandom'), 'EPERM');
  assert.equal(await p.mknod('c', 1, 11), 'EPERM');
  const second = await attachDeviceFilter(dir, DEFAULT_DEVICE_RULES);
  assert.notEqual(second, first);
  assert.deepEqual(deviceFilterIds(dir), [second]);
  // were the narrower program still attached, these would still fail
  assert.equal(await p.open('/dev/urandom', 'r', 1), 'ok');
  assert.equal(await p.mknod('c', 1, 11), 'ok');

  // two programs stacked by someone else (both ALLOW_MULTI): both go
  const dirFd = openSync(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  const extra = bpfDeviceProgLoad(encodeProgram(deviceProgram([])), 'GPL');
  try {
    bpfDeviceProgAttach(dirFd, extra);
  } finally {
    closeSync(extra);
    closeSync(dirFd);
  }
  assert.equal(deviceFilterIds(dir).length, 2);
  assert.equal(await p.open('/dev/null'), 'EPERM', 'the deny-all program applies on top');
  const third = await attachDeviceFilter(dir, [...DEFAULT_DEVICE_RULES, kmsgRead]);
  assert.deepEqual(deviceFilterIds(dir), [third]);
  assert.equal(await p.open('/dev/null'), 'ok');
  assert.equal(await p.open(KMSG), 'ok');
});

test('bad rules and bad dirs change nothing and say why', async () => {
  const dir = cgroupDir();
  const id = await attachDeviceFilter(dir, DEFAULT_DEVICE_RULES);
  await assert.rejects(attachDeviceFilter(dir, [{ type: 'c', major: 1, minor: 3, access: 'rx' }]), (e: unknown) => isTsmError(e, 'EINVAL_ARG'));
  assert.deepEqual(deviceFilterIds(dir), [id]);
  await assert.rejects(attachDeviceFilter(path.join(dir, 'missing'), DEFAULT_DEVICE_RULES), (e: unknown) => isTsmError(e, 'ECGROUP') && /cannot open the cgroup dir/.test(e.message));
  const v1Devices = layout.v1.get('devices');
  if (v1Devices) {
    await assert.rejects(attachDeviceFilter(v1Devices, DEFAULT_DEVICE_RULES), (e: unknown) => isTsmError(e, 'ECGROUP_MISSING') && /not a cgroup v2 directory/.test(e.message));
  }
  await assert.rejects(attachDeviceFilter(tmp, DEFAULT_DEVICE_RULES), (e: unknown) => isTsmError(e, 'ECGROUP_MISSING'));
});

test('V2Manager.applyDevices restricts the processes added to it', async () => {
  assert.ok(V2);
  const parent = `tsmigrate-devtest-${tag}-mgr`;
  dirs.push(path.join(V2, parent));
  const m = createCgroupManager({ name: 'c', parent, prefer: 'v2' });
  assert.equal(m.kind, 'v2');
  await m.create();
  dirs.push(m.paths['unified']!);
  await m.applyDevices(DEFAULT_DEVICE_RULES);
  const p = new Probe();
  await m.addProcess(p.pid);
  assert.deepEqual(await m.pids(), [p.pid]);
  assert.equal(await p.open('/dev/null', 'r+'), 'ok');
  assert.equal(await p.open(KMSG), 'EPERM');
  await m.applyDevices([...DEFAULT_DEVICE_RULES, kmsgRead]);
  assert.equal(deviceFilterIds(m.paths['unified']!).length, 1);
  assert.equal(await p.open(KMSG), 'ok');
  await p.stop();
  await m.destroy();
});
