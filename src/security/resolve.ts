/**
 * The side effects around planSecurity: stat the --device nodes, read the
 * seccomp profile; and writing the compiled filter where tsm-shim reads it.
 */
import { statSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { TsmError } from '../errors/errors.js';
import { deviceFromStat, parseDeviceFlag } from './devices.js';
import { LEGACY_PROFILE, planSecurity, type SecurityProfile } from './profile.js';
import { DEFAULT_SECCOMP_PROFILE, readSeccompProfile, seccompRulesText } from './seccomp.js';

export interface SecurityFlags {
  privileged?: boolean;
  capAdd?: readonly string[];
  capDrop?: readonly string[];
  securityOpt?: readonly string[];
  /** --device HOST[:CONTAINER][:PERMS] */
  device?: readonly string[];
}

/** The profile the flags ask for; throws one clear error (and touches nothing) on bad input. */
export function resolveSecurity(f: SecurityFlags): SecurityProfile {
  const devices = (f.device ?? []).map((raw) => {
    const req = parseDeviceFlag(raw);
    let st;
    try {
      st = statSync(req.hostPath);
    } catch (e) {
      throw new TsmError('EINVAL_ARG', `--device ${req.hostPath}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { fix: 'name a device node that exists on this host' });
    }
    return deviceFromStat(req, st);
  });
  return planSecurity(
    { privileged: f.privileged === true, capAdd: f.capAdd ?? [], capDrop: f.capDrop ?? [], securityOpt: f.securityOpt ?? [], devices },
    (source) => readSeccompProfile(source === 'default' ? DEFAULT_SECCOMP_PROFILE : source),
  );
}

/** A container's profile: the one in its config, or everything for containers made before profiles. */
export function profileOf(config: { security?: SecurityProfile }): SecurityProfile {
  return config.security ?? LEGACY_PROFILE;
}

export const SECCOMP_RULES_FILE = 'seccomp.rules';

/** Write the compiled filter into the container's dir (root only); its path, or undefined when unconfined. */
export async function writeSeccompRules(containerDir: string, p: SecurityProfile): Promise<string | undefined> {
  if (!p.seccomp.compiled) return undefined;
  const file = path.join(containerDir, SECCOMP_RULES_FILE);
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, seccompRulesText(p.seccomp.compiled), { mode: 0o600 });
  await fs.rename(tmp, file);
  return file;
}
