import type { Command } from 'commander';
import { runDoctor } from '../../doctor/doctor.js';
import { print, printJson, runtimeFor } from '../context.js';

export function registerDoctorCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('doctor')
    .description('check CRIU, cgroups, overlayfs, the native parts and sshd; say what is missing and how to fix it')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const findings = await runDoctor(rt.tools);
      if (json) printJson(findings);
      else {
        for (const f of findings) {
          print(`${f.ok ? 'ok  ' : 'MISS'} ${f.check}: ${f.detail}`);
          if (!f.ok && f.disables) print(`     disables: ${f.disables}`);
          if (!f.ok && f.fix) print(`     fix: ${f.fix}`);
        }
      }
      // only what containers need is fatal; optional kernel features are reported
      const fatal = findings.filter((f) => !f.ok && ['root', 'criu', 'criu check', 'cgroups', 'overlayfs', 'native addon', 'tsm-shim'].includes(f.check));
      setExit(fatal.length ? 1 : 0);
    });
}
