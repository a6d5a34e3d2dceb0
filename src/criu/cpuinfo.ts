/**
 * CPU compatibility of a checkpoint: `criu cpuinfo dump` records this host's
 * CPU in DIR/cpuinfo.img (done with every checkpoint); `criu cpuinfo check`
 * on the restore host says whether its CPU can run what was recorded (x86:
 * the FPU/xsave features by default).
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { CriuBinary } from './binary.js';
import { cpuinfoCheckArgv, cpuinfoDumpArgv } from './argv.js';
import { isCriuError, parseCriuLogLine, HARMLESS_CRIU_ERRORS } from './errors.js';
import { runCriu } from './run.js';

const CPUINFO_TIMEOUT_MS = 60_000;
export const CPUINFO_IMAGE = 'cpuinfo.img';

/** Write DIR/cpuinfo.img for this host. Throws CriuError / TsmError ECRIU_MISSING. */
export async function criuCpuinfoDump(bin: CriuBinary | string, dir: string): Promise<void> {
  await runCriu(bin, cpuinfoDumpArgv(dir), { imagesDir: dir, timeoutMs: CPUINFO_TIMEOUT_MS });
}

/** The Error lines CRIU printed (without the harmless ones), as one line. */
function errorText(out: string): string {
  const errs: string[] = [];
  for (const l of out.split('\n')) {
    const p = parseCriuLogLine(l);
    if (p?.level === 'Error' && !HARMLESS_CRIU_ERRORS.some((re) => re.test(l)) && !errs.includes(p.text)) errs.push(p.text);
  }
  return errs.join('; ');
}

/**
 * Can this host's CPU run what DIR/cpuinfo.img describes? ok:false with the
 * reason in detail when it cannot, or when there is no cpuinfo.img. Throws
 * only when CRIU cannot be run.
 */
export async function criuCpuinfoCheck(
  bin: CriuBinary | string,
  dir: string,
  /** keep CRIU's output when the check fails (kept-logs.ts), named in keptLog */
  keepLog?: { root: string; container?: string },
): Promise<{ ok: boolean; detail: string; keptLog?: string }> {
  const argv = cpuinfoCheckArgv(dir);
  const img = path.join(dir, CPUINFO_IMAGE);
  if (!(await access(img).then(() => true, () => false))) {
    return { ok: false, detail: `no ${CPUINFO_IMAGE} in ${dir} (the checkpoint did not record its CPU)` };
  }
  try {
    await runCriu(bin, argv, { imagesDir: dir, timeoutMs: CPUINFO_TIMEOUT_MS, ...(keepLog ? { keepLog } : {}) });
    return { ok: true, detail: `this host's CPU can run what ${img} describes` };
  } catch (e) {
    if (!isCriuError(e) || e.reason === 'interrupted') throw e;
    const detail = e.excerpt.length > 0 ? errorText(e.excerpt.join('\n')) : '';
    return { ok: false, detail: detail !== '' ? detail : e.message, ...(keepLog && e.logPath !== undefined ? { keptLog: e.logPath } : {}) };
  }
}
