import { settleBefore } from '../settle.js';
import { isatty } from 'node:tty';
import type { Command } from 'commander';
import { attachTerminal } from '../../container/attach.js';
import { checkTerminal, execInContainer } from '../../container/exec.js';
import { inspectContainer, listContainers } from '../../container/list.js';
import { streamLogs } from '../../container/logs.js';
import { freezeContainer, thawContainer } from '../../container/pause.js';
import { removeContainer } from '../../container/remove.js';
import { runContainer } from '../../container/run.js';
import { stopContainer } from '../../container/stop.js';
import { assertAllowed, loadView } from '../../container/view.js';
import type { Runtime } from '../../runtime/context.js';
import { TsmError } from '../../errors/errors.js';
import { parseEnv, parseRunRequest, parseUser, parseWorkdir, type RawRunOptions } from '../parse.js';
import { humanBytes, humanDuration, oomCell, table } from '../output.js';
import { print, printJson, runtimeFor } from '../context.js';

async function waitForExit(rt: Runtime, name: string, ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    const e = await rt.store.exitInfo(name);
    if (e || Date.now() > deadline) return e;
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface ExecFlags {
  env?: string[];
  workdir?: string;
  user?: string;
  interactive?: boolean;
  tty?: boolean;
}

/**
 * While the shim relays: SIGTERM and SIGHUP are passed to it (it passes them to the process). SIGINT and
 * SIGQUIT are only kept from killing the CLI: the terminal sends them to the whole foreground process
 * group, the shim included, which forwards them once.
 */
async function withSignalsForwarded<T>(run: (onStart: (signal: (s: NodeJS.Signals) => void) => void) => Promise<T>): Promise<T> {
  let send: ((s: NodeJS.Signals) => void) | undefined;
  const forward = (s: NodeJS.Signals) => send?.(s);
  const keep = () => undefined;
  process.on('SIGTERM', forward).on('SIGHUP', forward).on('SIGINT', keep).on('SIGQUIT', keep);
  try {
    return await run((signal) => (send = signal));
  } finally {
    process.off('SIGTERM', forward).off('SIGHUP', forward).off('SIGINT', keep).off('SIGQUIT', keep);
  }
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function parseSeconds(s: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0 || n > 86400) {
    throw new TsmError('EINVAL_ARG', `invalid --time "${s}"`, { fix: 'give whole seconds between 0 and 86400' });
  }
  return n;
}

export function registerContainerCommands(program: Command, setExit: (code: number) => void): void {
  program
    .command('run')
    .description('create and start a container')
    .argument('<name>', 'container name ([a-z0-9][a-z0-9_.-]{0,62})')
    .argument('<command...>', 'command and arguments (after --)')
    .option('-d, --detach', 'run in the background and print the name')
    .requiredOption('--image <image>', 'image name or digest')
    .option('--memory <size>', 'memory limit, e.g. 256m')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('--cpus <n>', 'CPU quota in CPUs, e.g. 1.5')
    .option('--cpu-weight <w>', 'CPU weight 1-10000')
    .option('--cpuset-cpus <list>', 'CPUs allowed, e.g. 0-1')
    .option('--pids-limit <n>', 'maximum number of tasks')
    .option('--io-weight <w>', 'block IO weight 1-10000')
    .option('--hugetlb-limit <size:limit>', 'huge page limit per page size, e.g. 2MB:64m (repeatable)', collect)
    .option('--net-cls-classid <id>', 'net_cls class id, a tc handle (10:1) or number (0x100001); cgroup v1')
    .option('--net-prio <iface=prio>', 'net_prio priority on a host interface, e.g. eth0=5 (repeatable); cgroup v1', collect)
    .option('--device-read-bps <dev:rate>', 'read rate limit of a block device, e.g. /dev/sda:1mb (repeatable)', collect)
    .option('--device-write-bps <dev:rate>', 'write rate limit of a block device, e.g. /dev/sda:1mb (repeatable)', collect)
    .option('--device-read-iops <dev:n>', 'read operations per second of a block device, e.g. /dev/sda:100 (repeatable)', collect)
    .option('--device-write-iops <dev:n>', 'write operations per second of a block device, e.g. /dev/sda:100 (repeatable)', collect)
    .option('--hostname <name>', 'hostname (default: the container name)')
    .option('-e, --env <K=V>', 'environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <uid:gid>', 'numeric user and group')
    .option('--net <mode>', 'none (loopback only) or bridge', 'none')
    .option('--ip <addr>', 'static IPv4 address (with --net bridge)')
    .option('--privileged', 'give the container every capability, all devices, no seccomp filter, no masked paths')
    .option('--cap-add <cap>', 'keep a capability beyond the default set, or ALL (repeatable)', collect)
    .option('--cap-drop <cap>', 'drop a capability of the default set, or ALL (repeatable)', collect)
    .option('--security-opt <opt>', 'seccomp=unconfined|FILE.json, no-new-privileges[=true|false] (repeatable)', collect)
    .option('--userns <mode>', 'auto: root in the container is an unprivileged range of host ids; host: none (default)')
    .option('--device <HOST[:CONTAINER][:rwm]>', 'make a host device available inside (repeatable)', collect)
    .option('--log-max-size <size>', 'rotate container.log at this size (default 10m)')
    .option('--log-max-files <n>', 'log files kept, the current one included (default 2)')
    .option('--log-opt <key=value>', 'docker-style log option: max-size=SIZE or max-file=N (repeatable)', collect)
    .option('-i, --interactive', 'relay stdin to the container (with -t)')
    .option('-t, --tty', "give the container's init a terminal (a pty of its own devpts)")
    .action(async (name: string, command: string[], o: RawRunOptions & { detach?: boolean }, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const req = parseRunRequest(name, command, o);
      const relayInput = Boolean(o.interactive && !o.detach);
      checkTerminal({ interactive: relayInput, tty: req.tty ?? false }, isatty(0));
      if (req.tty && !o.detach && process.stdout.isTTY) req.ttySize = { rows: process.stdout.rows, cols: process.stdout.columns };
      await runContainer(rt, req);
      if (o.detach) {
        if (json) printJson((await inspectContainer(rt, name)) as object);
        else print(name);
        return;
      }
      // foreground: follow the log, pass Ctrl-C on to the container, exit with its code
      const ac = new AbortController();
      const onSig = (sig: NodeJS.Signals) => {
        loadView(rt, name)
          .then((v) => v.state.initPid && process.kill(v.state.initPid, sig))
          .catch(() => undefined);
      };
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      const attached = req.tty ? await attachTerminal(rt, name, relayInput) : 'gone';
      if (attached === 'detached') return;
      // without a terminal, or a command that ended before the attach: the output is in the log
      if (attached === 'gone') await streamLogs(rt, name, process.stdout, true, ac.signal);
      // the supervisor writes exit.json once it has drained the container's output
      const exit = await waitForExit(rt, name, 5000);
      setExit(exit?.exitCode ?? 1);
    });

  program
    .command('ps')
    .description('list containers')
    .action(async (_o: unknown, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const rows = await listContainers(rt);
      if (json) return printJson(rows);
      print(
        table(
          ['NAME', 'STATE', 'PID', 'IP', 'MEMORY', 'OOM', 'UPTIME', 'IMAGE', 'COMMAND'],
          rows.map((r) => [
            r.name,
            r.state === 'exited' ? `exited(${r.exitCode ?? '?'}${r.oomKilled ? ',oom' : ''})` : r.state,
            r.pid === null ? '-' : String(r.pid),
            r.ip ?? '-',
            humanBytes(r.memoryBytes),
            oomCell(r.oomKills, r.lastOomKillAt, Date.now()),
            humanDuration(r.uptimeSec),
            r.image,
            r.command.length > 40 ? `${r.command.slice(0, 37)}...` : r.command,
          ]),
        ),
      );
    });

  program
    .command('inspect')
    .description('show a container: config, pids, cgroups, mounts, network')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      printJson(await inspectContainer(rt, name));
    });

  program
    .command('exec')
    .description('run a command inside a running container')
    .argument('<name>')
    .argument('<command...>')
    .option('-e, --env <K=V>', 'extra environment variable (repeatable)', collect)
    .option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <uid:gid>', 'numeric user and group')
    .option('-i, --interactive', 'keep stdin open and relay it to the command')
    .option('-t, --tty', "give the command a terminal of its own (a pty of the container's)")
    .action(async (name: string, command: string[], o: ExecFlags, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      const req = {
        name,
        command,
        env: (o.env ?? []).map(parseEnv),
        ...(o.workdir ? { workdir: parseWorkdir(o.workdir) } : {}),
        ...(o.user ? { user: parseUser(o.user) } : {}),
        interactive: Boolean(o.interactive),
        tty: Boolean(o.tty),
      };
      checkTerminal(req, isatty(0));
      const r = await withSignalsForwarded((onStart) => execInContainer(rt, req, { onStart }));
      setExit(r.code);
    });

  program
    .command('attach')
    .description('put this terminal on the terminal of a container run with -t (Ctrl-P Ctrl-Q detaches)')
    .argument('<name>')
    .option('--no-stdin', 'only show its output')
    .action(async (name: string, o: { stdin: boolean }, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      assertAllowed(await loadView(rt, name), 'attach');
      const r = await attachTerminal(rt, name, o.stdin);
      if (r === 'gone') throw new TsmError('EBAD_STATE', `${name} is no longer running`, { fix: `see its output with tsmigrate logs ${name}` });
      if (r === 'ended') setExit((await waitForExit(rt, name, 5000))?.exitCode ?? 1);
    });

  program
    .command('stop')
    .description('stop a container: SIGTERM, then SIGKILL after the timeout')
    .argument('<name>')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(async (name: string, o: { time: string }, cmd: Command) => {
      const { rt, json } = runtimeFor(cmd);
      const view = await stopContainer(rt, name, parseSeconds(o.time));
      if (json) printJson({ name, status: view.status, exit: view.exit ?? null });
      else print(name);
    });

  program
    .command('rm')
    .description('remove a container and everything it holds')
    .argument('<names...>')
    .option('-f, --force', 'stop it first if it runs')
    .action(async (names: string[], o: { force?: boolean }, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      for (const n of names) {
        await settleBefore(cmd, rt, n);
        await removeContainer(rt, n, Boolean(o.force));
        print(n);
      }
    });

  program
    .command('freeze')
    .description('freeze every task of a container (freezer cgroup)')
    .argument('<name>')
    .option('--timeout <ms>', 'how long to wait for the kernel', '5000')
    .action(async (name: string, o: { timeout: string }, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      await freezeContainer(rt, name, Number(o.timeout));
      print(name);
    });

  program
    .command('thaw')
    .description('thaw a frozen container')
    .argument('<name>')
    .option('--timeout <ms>', 'how long to wait for the kernel', '5000')
    .action(async (name: string, o: { timeout: string }, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      await thawContainer(rt, name, Number(o.timeout));
      print(name);
    });

  program
    .command('logs')
    .description("print a container's stdout and stderr")
    .argument('<name>')
    .option('-f, --follow', 'keep printing until the container exits')
    .action(async (name: string, o: { follow?: boolean }, cmd: Command) => {
      const { rt } = runtimeFor(cmd);
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      await streamLogs(rt, name, process.stdout, Boolean(o.follow), ac.signal);
    });
}
