import type { LogPolicy } from '../container/types.js';

export interface SupervisorOptions {
  log: LogPolicy;
  /** the cgroup file counting the kernel's OOM kills (CgroupManager.oomKillFile), if any */
  oomFile: string | undefined;
  /** OOM kills recorded before this supervisor (a restore or a move: the cgroup is new) */
  oomKillsBefore: number;
}

/** Pure: tsm-shim's options for its supervisor loop in run and restore mode (native/shim/main.c). */
export function supervisorArgs(s: SupervisorOptions): string[] {
  const a = ['--log-max-size', String(s.log.maxBytes), '--log-max-files', String(s.log.maxFiles)];
  if (s.oomFile) a.push('--oom-file', s.oomFile, '--oom-kills-before', String(s.oomKillsBefore));
  return a;
}
