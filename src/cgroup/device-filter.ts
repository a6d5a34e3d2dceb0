/**
 * cgroup v2 has no devices files: access is decided by a BPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (as runc and systemd do).
 * The program comes from device-program.ts; this file loads it, attaches it to
 * an O_DIRECTORY fd of the cgroup dir and removes the one it replaces.
 *
 * Replacing: every device program attached to the dir is taken to be ours
 * (tsmigrate owns its cgroups). With one there, BPF_F_REPLACE swaps it
 * atomically; otherwise (none, several, or a kernel before 5.6 without
 * BPF_F_REPLACE) the new one is attached first and the old ones detached
 * after, so the cgroup is never less restricted than both sets of rules in
 * between (attached programs must all allow an access).
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { TsmError } from '../errors/errors.js';
import {
  BPF_F_ALLOW_MULTI, bpfDeviceProgAttach, bpfDeviceProgDetach, bpfDeviceProgLoad, bpfDeviceProgQuery, bpfProgFdById, bpfProgId,
  isErrnoError, type BpfLoadError,
} from '../native/native.js';
import type { DeviceRule } from '../security/devices.js';
import { deviceProgram, encodeProgram } from './device-program.js';

/** The license string the kernel records for the program (no GPL-only helpers are called). */
export const DEVICE_PROGRAM_LICENSE = 'Apache-2.0';

const NO_BPF_FIX =
  'use a kernel built with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF (Linux 4.15 or newer; 5.6 or newer replaces filters atomically), or run the container with --privileged';

/**
 * Pure: a failed bpf(2) (or open) step as one TsmError. A kernel that cannot
 * load or attach device programs is ECGROUP_MISSING; a program the verifier
 * rejects is our bug (EINTERNAL, with the verifier's last lines).
 */
export function deviceFilterError(e: unknown, cgroupDir: string): TsmError {
  if (e instanceof TsmError) return e;
  if (!isErrnoError(e)) {
    return new TsmError('EINTERNAL', `cannot attach the device filter to ${cgroupDir}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  const what = `${e.syscall}: ${e.code}`;
  const log = (e as BpfLoadError).verifierLog?.trim();
  if (e.syscall === 'open') {
    return new TsmError('ECGROUP', `cannot open the cgroup dir ${cgroupDir} (${e.code})`, {
      fix: 'create the cgroup first; tsmigrate needs root for cgroupfs',
      cause: e,
    });
  }
  if (e.code === 'ENOSYS') {
    return new TsmError('ECGROUP_MISSING', `this kernel has no bpf() syscall, so devices cannot be restricted in ${cgroupDir} (${what})`, { fix: NO_BPF_FIX, cause: e });
  }
  if (e.code === 'EPERM' || e.code === 'EACCES') {
    if (log) return verifierRejected(e, log, cgroupDir);
    return new TsmError('ECGROUP_MISSING', `the kernel refuses BPF device filters on ${cgroupDir} (${what})`, {
      fix: 'run tsmigrate as root with CAP_SYS_ADMIN, on a kernel not locked down (lockdown=confidentiality forbids BPF) and with no exclusive device program attached above the cgroup; or run the container with --privileged',
      cause: e,
    });
  }
  if (e.syscall === 'bpf(BPF_PROG_LOAD)' && e.code === 'EINVAL') {
    if (log) return verifierRejected(e, log, cgroupDir);
    return new TsmError('ECGROUP_MISSING', `this kernel cannot load BPF cgroup device programs (${what})`, { fix: NO_BPF_FIX, cause: e });
  }
  if (e.code === 'EBADF' && e.syscall !== 'bpf(BPF_PROG_GET_FD_BY_ID)') {
    return new TsmError('ECGROUP_MISSING', `${cgroupDir} is not a cgroup v2 directory, so no BPF device filter can be attached (${what})`, {
      fix: 'use the cgroup v2 hierarchy (mounted with -t cgroup2), or the v1 devices controller',
      cause: e,
    });
  }
  if ((e.syscall === 'bpf(BPF_PROG_ATTACH)' || e.syscall === 'bpf(BPF_PROG_QUERY)') && e.code === 'EINVAL') {
    return new TsmError('ECGROUP_MISSING', `this kernel cannot attach BPF device programs to ${cgroupDir} (${what})`, { fix: NO_BPF_FIX, cause: e });
  }
  return new TsmError('ECGROUP', `cannot attach the device filter to ${cgroupDir}: ${e.message}`, {
    fix: 'check the kernel log (dmesg); run the container with --privileged to go without the filter',
    cause: e,
  });
}

function verifierRejected(e: BpfLoadError, log: string, cgroupDir: string): TsmError {
  const tail = log.split('\n').filter(Boolean).slice(-3).join(' | ');
  return new TsmError('EINTERNAL', `the kernel's verifier rejected tsmigrate's device program for ${cgroupDir} (${e.code}): ${tail}`, {
    fix: 'report this as a tsmigrate bug with the rules given; run the container with --privileged meanwhile',
    cause: e,
  });
}

function withCgroupDir<T>(cgroupDir: string, f: (dirFd: number) => T): T {
  let dirFd: number;
  try {
    dirFd = openSync(cgroupDir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  } catch (e) {
    throw deviceFilterError(e, cgroupDir);
  }
  try {
    return f(dirFd);
  } catch (e) {
    throw deviceFilterError(e, cgroupDir);
  } finally {
    closeSync(dirFd);
  }
}

/** fds of programs by id; one detached since the query (ENOENT) is skipped. */
function openPrograms(ids: readonly number[]): number[] {
  const fds: number[] = [];
  try {
    for (const id of ids) {
      try {
        fds.push(bpfProgFdById(id));
      } catch (e) {
        if (!isErrnoError(e, 'ENOENT')) throw e;
      }
    }
    return fds;
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  }
}

function attachReplacing(dirFd: number, progFd: number, oldFds: readonly number[]): void {
  if (oldFds.length === 1) {
    try {
      bpfDeviceProgAttach(dirFd, progFd, oldFds[0]);
      return;
    } catch (e) {
      // EINVAL: no BPF_F_REPLACE (Linux < 5.6); attach, then detach below
      if (!isErrnoError(e, 'EINVAL')) throw e;
    }
  }
  bpfDeviceProgAttach(dirFd, progFd);
  for (const fd of oldFds) {
    try {
      bpfDeviceProgDetach(dirFd, fd);
    } catch (e) {
      if (!isErrnoError(e, 'ENOENT')) throw e; // detached meanwhile
    }
  }
}

/**
 * Attach (or replace) the device program of a v2 cgroup dir so that exactly
 * `rules` are allowed; the id of the program attached.
 */
export async function attachDeviceFilter(cgroupDir: string, rules: readonly DeviceRule[]): Promise<number> {
  const insns = encodeProgram(deviceProgram(rules));
  return withCgroupDir(cgroupDir, (dirFd) => {
    const old = bpfDeviceProgQuery(dirFd);
    if (old.progIds.length > 0 && old.attachFlags !== BPF_F_ALLOW_MULTI) {
      throw new TsmError('ECGROUP', `${cgroupDir} has a device program attached exclusively (attach flags ${old.attachFlags}), which tsmigrate did not attach`, {
        fix: `detach it (bpftool cgroup show ${cgroupDir}; bpftool cgroup detach ${cgroupDir} device id ID)`,
      });
    }
    const progFd = bpfDeviceProgLoad(insns, DEVICE_PROGRAM_LICENSE);
    try {
      const oldFds = openPrograms(old.progIds);
      try {
        attachReplacing(dirFd, progFd, oldFds);
      } finally {
        for (const fd of oldFds) closeSync(fd);
      }
      return bpfProgId(progFd);
    } finally {
      closeSync(progFd);
    }
  });
}

/** Ids of the device programs attached to a v2 cgroup dir itself (not those inherited from its parents). */
export function deviceFilterIds(cgroupDir: string): number[] {
  return withCgroupDir(cgroupDir, (dirFd) => bpfDeviceProgQuery(dirFd).progIds);
}
