/**
 * The benchmark workload: a Debian container running python3 that holds SIZE
 * MiB of heap-like memory (64 KiB chunks, alternately English-like text and
 * random bytes, so about half of it compresses), touches every page, writes
 * /tmp/ready, then sleeps in a loop writing /tmp/heartbeat. When /tmp/mutate
 * appears (see mutate()), it rewrites that fraction of its 64 KiB chunks with
 * fresh random bytes and reports it in /tmp/mutated.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runContainer } from '../../src/container/run.js';
import type { ContainerRuntimeState } from '../../src/container/types.js';
import type { Runtime } from '../../src/runtime/context.js';
import { sleep } from './timing.js';

const MiB = 1 << 20;
/** the workload's chunk: C in its Python */
const CHUNK = 64 << 10;

const PY = `
import os, random, sys, time
size = int(sys.argv[1]) << 20
C = 64 << 10
words = ("the of and to in is was that for on with as by at from his her they this which "
         "container memory checkpoint restore process kernel page frozen image migrate "
         "network socket thread value result error request response buffer cache").split()
rng = random.Random(1)
# a pool of distinct text chunks; each use gets a unique stamp so no two pages are equal
pool = []
for _ in range(256):
    s = " ".join(rng.choice(words) for _ in range(C // 5)).encode()
    pool.append((s * 2)[:C])
buf = bytearray(size)
mv = memoryview(buf)
for i, off in enumerate(range(0, size, C)):
    if i % 2 == 0:
        mv[off:off + C] = pool[rng.randrange(256)]
        for p in range(off, off + C, 4096):
            mv[p:p + 16] = b"%016x" % (p ^ i)
    else:
        mv[off:off + C] = os.urandom(C)
# warm: read every page once more
s = 0
for p in range(0, size, 4096):
    s += buf[p]
with open("/tmp/ready", "w") as f:
    f.write("%d %d\\n" % (size, s))
n = 0
mutations = 0
chunks = size // C
mrng = random.Random()
while True:
    n += 1
    with open("/tmp/heartbeat", "w") as f:
        f.write("%d\\n" % n)
    # the store benchmark's trigger: rewrite a fraction of the 64 KiB chunks, chosen at random
    if os.path.exists("/tmp/mutate"):
        try:
            with open("/tmp/mutate") as f:
                frac = float(f.read().strip())
        except (OSError, ValueError):
            frac = 0.0
        os.remove("/tmp/mutate")
        k = max(0, min(chunks, int(round(frac * chunks))))
        for i in mrng.sample(range(chunks), k):
            mv[i * C:(i + 1) * C] = os.urandom(C)
        mutations += 1
        with open("/tmp/mutated.tmp", "w") as f:
            f.write("%d %d\\n" % (mutations, k))
        os.rename("/tmp/mutated.tmp", "/tmp/mutated")
    time.sleep(0.1)
`;

export interface Workload {
  name: string;
  sizeMiB: number;
  initPid: number;
  freezerDir: string;
  upper: string;
  /** the overlay root as mounted on the host (writes through it are seen by the container at once) */
  merged?: string;
}

/** Start the workload container and wait until it has filled its memory. */
export async function startWorkload(rt: Runtime, name: string, sizeMiB: number, signal: AbortSignal): Promise<Workload> {
  await runContainer(rt, {
    name,
    image: 'debian',
    command: ['/usr/bin/python3', '-c', PY, String(sizeMiB)],
    env: [],
    limits: { memoryBytes: (sizeMiB + 256) * MiB },
    net: 'none',
  });
  const state = JSON.parse(await fs.readFile(path.join(rt.paths.container(name), 'state.json'), 'utf8')) as ContainerRuntimeState;
  const freezerDir = state.cgroupPaths?.['freezer'] ?? state.cgroupPaths?.['unified'];
  if (!state.initPid || !freezerDir) throw new Error(`state.json of ${name} has no initPid or freezer cgroup`);
  const ready = path.join(state.rootfs.upper, 'tmp/ready');
  const deadline = Date.now() + 60_000 + sizeMiB * 200;
  while (!(await fs.stat(ready).then(() => true, () => false))) {
    signal.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`${name} did not report ready in time`);
    try {
      process.kill(state.initPid, 0);
    } catch {
      throw new Error(`${name} exited before it was ready (see ${rt.paths.container(name)}/container.log)`);
    }
    await sleep(100);
  }
  return { name, sizeMiB, initPid: state.initPid, freezerDir, upper: state.rootfs.upper, merged: state.rootfs.merged };
}

/** The container's resident memory in the memory cgroup (v1 or v2), in MiB, for the report. */
export async function residentMiB(rt: Runtime, name: string): Promise<number> {
  const st = await rt.cgroups(name).stats().catch(() => ({ memoryBytes: 0 }));
  return Math.round((st.memoryBytes ?? 0) / MiB);
}

/** What `mutate` did: the workload's mutation counter, the 64 KiB chunks it rewrote, and how long it took. */
export interface Mutation {
  count: number;
  chunks: number;
  bytes: number;
  ms: number;
}

/**
 * Make the workload rewrite `fraction` (0..1) of its 64 KiB chunks, chosen at
 * random (so scattered over the heap), with fresh random bytes. The trigger,
 * /tmp/mutate, is written (then renamed into place) through the overlay as the
 * host sees it mounted (`merged`), not into the upper dir: the container has
 * looked /tmp/mutate up every heartbeat, and overlayfs keeps that negative
 * dentry, so a file put straight into the upper dir stays invisible to it.
 * The workload picks the trigger up within a heartbeat (100 ms), deletes it,
 * rewrites the chunks and then renames a new /tmp/mutated into place, which
 * this waits for (read from the upper dir, as /tmp/ready is).
 */
export async function mutate(w: Workload, fraction: number, signal: AbortSignal, timeoutMs = 60_000 + w.sizeMiB * 100): Promise<Mutation> {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`mutate: fraction ${fraction} is not in 0..1`);
  // rootfsLayout puts merged next to upper; Workloads made before `merged` existed lack it
  const tmp = path.join(w.merged ?? path.join(path.dirname(w.upper), 'merged'), 'tmp');
  const done = path.join(w.upper, 'tmp/mutated');
  const before = await fs.readFile(done, 'utf8').catch(() => '');
  const t0 = performance.now();
  const staged = path.join(tmp, `.mutate-${process.pid}`);
  await fs.writeFile(staged, `${fraction}\n`);
  await fs.rename(staged, path.join(tmp, 'mutate'));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await fs.readFile(done, 'utf8').catch(() => '');
    if (now && now !== before) {
      const [count, chunks] = now.trim().split(' ').map(Number);
      if (!Number.isInteger(count) || !Number.isInteger(chunks)) throw new Error(`${w.name}: unexpected /tmp/mutated "${now.trim()}"`);
      return { count: count!, chunks: chunks!, bytes: chunks! * CHUNK, ms: performance.now() - t0 };
    }
    signal.throwIfAborted();
    if (Date.now() > deadline) throw new Error(`${w.name} did not pick up /tmp/mutate in time`);
    try {
      process.kill(w.initPid, 0);
    } catch {
      throw new Error(`${w.name} exited while rewriting its memory`);
    }
    await sleep(20);
  }
}
