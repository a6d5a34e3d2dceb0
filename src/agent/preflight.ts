import { securityProblems } from './preflight-security.js';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectLayout } from '../cgroup/detect.js';
import { criuCheck, locateCriu } from '../criu/binary.js';
import { criuCpuinfoCheck } from '../criu/cpuinfo.js';
import { criuKeyLines } from '../criu/errors.js';
import { keepCriuLog } from '../criu/kept-logs.js';
import { resolveImage } from '../image/store.js';
import { readLease } from '../network/ipam.js';
import { plannedLeaseRepairs } from './lease-facts.js';
import type { Runtime } from '../runtime/context.js';
import { stagingBase } from '../checkpoint/staging.js';
import { filesystemReader } from './filesystems.js';
import { peerSpaceNeeds, planSpace, spaceProblem, type FilesystemFacts, type SpaceUse } from './peer-space.js';
import type { PreflightRequest, PreflightResult } from './api.js';
import type { MigrationRecords } from './migrations.js';

type Problem = PreflightResult['problems'][number];

async function memAvailable(): Promise<number> {
  const text = await fs.readFile('/proc/meminfo', 'utf8').catch(() => '');
  const m = /MemAvailable:\s+(\d+) kB/.exec(text);
  return m ? Number(m[1]) * 1024 : os.freemem();
}

/** Which controllers the container's limits need. */
function neededControllers(p: PreflightRequest): string[] {
  const l = p.config.limits;
  const need = ['memory', 'pids', 'freezer'];
  if (l.cpus !== undefined || l.cpuWeight !== undefined) need.push('cpu');
  if (l.cpusetCpus !== undefined) need.push('cpuset');
  if (l.ioWeight !== undefined) need.push('blkio');
  return need;
}

/**
 * Where the move's bytes go on this host: the memory images to the staging
 * directory begin() will choose (the same function, the same figures), the
 * upper layer and logs under the state root's containers, a missing image to
 * its images.
 */
export function peerSpace(rt: Runtime, p: PreflightRequest, needImage: boolean, fsOf: (dir: string) => FilesystemFacts = filesystemReader()): SpaceUse[] {
  const needs = peerSpaceNeeds(
    { memoryBytes: p.memoryBytes, upperBytes: p.upperBytes, logBytes: p.logBytes ?? 0, imageBytes: p.imageBytes ?? 0, needImage },
    { staging: stagingBase(rt.paths.root, p.memoryBytes, rt.tools.staging), containers: rt.paths.containers, images: rt.paths.images },
  );
  return planSpace(needs, fsOf);
}

/** Everything that would make the move fail later, checked before anything is frozen. */
export async function peerPreflight(rt: Runtime, records: MigrationRecords, p: PreflightRequest): Promise<PreflightResult> {
  const problems: Problem[] = [];
  const add = (check: string, message: string, fix: string) => problems.push({ check, message, fix });
  try {
    const criu = await locateCriu(rt.tools.criu);
    const chk = await criuCheck(criu);
    if (!chk.ok) {
      // its output kept here, where the peer's operator can read it
      const kept = await keepCriuLog({ root: rt.paths.root, op: 'check', text: chk.output });
      const said = criuKeyLines(chk.output);
      const quoted = said.length > 0 ? `: ${said.map((l) => `"${l}"`).join(' | ')}` : '';
      add('criu', `criu check fails on the peer (${criu.versionText})${quoted}${kept !== undefined ? `; its output is kept there at ${kept}` : ''}`, 'run scripts/setup.sh on the peer and tsmigrate doctor there');
    }
    if (p.cpuinfo) {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsm-cpuinfo-'));
      try {
        await fs.writeFile(path.join(dir, 'cpuinfo.img'), Buffer.from(p.cpuinfo, 'base64'));
        const r = await criuCpuinfoCheck(criu, dir, { root: rt.paths.root, container: p.name });
        const kept = r.keptLog !== undefined ? ` (CRIU's output is kept there at ${r.keptLog})` : '';
        if (!r.ok) add('cpu', `the peer's CPU lacks features the container may use: ${r.detail}${kept}`, 'move it to a host with the same or a newer CPU');
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    }
  } catch (e) {
    add('criu', `CRIU on the peer: ${(e as Error).message}`, 'run scripts/setup.sh on the peer');
  }
  try {
    const layout = detectLayout();
    const have = new Set([...layout.v1.keys(), ...(layout.kind === 'v2' ? layout.v2Controllers : [])]);
    if (layout.kind === 'v2') have.add('freezer');
    if (layout.kind === 'v2' && have.has('io')) have.add('blkio');
    for (const c of neededControllers(p)) {
      if (!have.has(c)) add('cgroups', `the peer has no ${c} cgroup controller, which the container's limits use`, `enable the ${c} controller on the peer`);
    }
    // huge pages, net_cls/net_prio and I/O throttles: the controller, the page size, each device by path
    for (const x of await rt.cgroups(p.name).check(p.config.limits, 'the peer')) add(x.check, x.message, x.fix);
  } catch (e) {
    add('cgroups', `cgroups on the peer: ${(e as Error).message}`, 'mount cgroups on the peer');
  }
  const needImage = await resolveImage(rt.paths, p.config.image.digest).then(() => false, () => true);
  const space = peerSpace(rt, p, needImage);
  for (const u of space) if (!u.fits) problems.push(spaceProblem(u));
  const mem = await memAvailable();
  if (mem < p.memoryBytes * 2 + (128 << 20)) add('memory', `the peer has ${mem} bytes of memory available, the move needs about ${p.memoryBytes * 2}`, 'free memory on the peer or choose another host');
  if (await rt.store.exists(p.name)) add('name', `a container named "${p.name}" already exists on the peer`, `remove it there (tsmigrate rm -f ${p.name}) or choose another host`);
  const seen = await records.seenEpoch(p.name);
  if (seen > p.epoch) add('epoch', `the peer has seen epoch ${seen} of "${p.name}", newer than this copy's ${p.epoch}`, 'this copy is stale: do not move it; run tsmigrate recover');
  for (const m of await records.list()) {
    if (m.name === p.name && (m.phase === 'begun' || m.phase === 'receiving' || m.phase === 'prepared')) {
      add('busy', `another migration of "${p.name}" (${m.id}) is in progress on the peer`, 'wait for it, or run tsmigrate recover on its source');
    }
  }
  if (p.network?.ip && rt.network.leaseDir) {
    const lease = await readLease(rt.network.leaseDir, p.network.ip).catch(() => undefined);
    const mine = p.leaseOwner && lease && lease.root === p.leaseOwner.root && lease.container === p.leaseOwner.container;
    // a lease a crash left behind is repaired when the move begins
    const leftover = lease && !mine && (await plannedLeaseRepairs(rt, p.network.ip)).some((r) => r.action === 'free');
    if (lease && !mine && !leftover) add('ip', `address ${p.network.ip} is taken on the peer by ${lease.container}`, 'free it on the peer or move the container elsewhere');
  }
  problems.push(...(await securityProblems(rt.paths.root, p.name, p.config)));
  return { ok: problems.length === 0, problems, needImage, freeBytes: filesystemReader()(rt.paths.root).freeBytes, space };
}
