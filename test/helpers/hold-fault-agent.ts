/**
 * A test-only peer agent: `node hold-fault-agent.js --root R [--fault F] [--block-abort FILE] [--block-commit FILE] agent --stdio`,
 * used as a rig host's command. It serves the real LocalAgent over stdin/stdout
 * with faults set through its hooks (never through the environment):
 *   --fault prepare-reply-lost   the agent dies once prepare succeeded, before its reply
 *   --block-abort FILE           while FILE exists, an abort kills the agent (the abort undeliverable)
 *   --block-commit FILE          while FILE exists, a commit of a held copy kills the agent (the commit undeliverable
 *                                until the hold expired; a commit after that gets the agent's real answer)
 * Hold guards are the real CLI's `guard-hold`.
 */
import { existsSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { spawnHoldGuard } from '../../src/agent/hold.js';
import { MigrationRecords } from '../../src/agent/migrations.js';
import { serveAgent } from '../../src/agent/protocol/rpc.js';
import { LocalAgent } from '../../src/agent/server.js';
import { createRuntime } from '../../src/runtime/context.js';
import { guardLogFile } from '../../src/state/guard-logs.js';
import { stderrLogger } from '../../src/util/logger.js';
import { CLI } from './cli.js';

const argv = process.argv.slice(2);
const opt = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
// run bare (node --test runs every file under dist/test/): nothing to serve
if (!argv.includes('--stdio')) process.exit(0);
const root = opt('--root');
if (!root || !argv.includes('agent')) {
  process.stderr.write('usage: hold-fault-agent.js --root R [--fault F] [--block-abort FILE] [--block-commit FILE] agent --stdio\n');
  process.exit(2);
}
const rt = createRuntime({ root, logger: stderrLogger(false) });
const die = (): void => void process.kill(process.pid, 'SIGKILL');
const agent = new LocalAgent(rt, 'test', {
  holdGuard: (id) => spawnHoldGuard([process.execPath, CLI, '--root', root, '--verbose', 'guard-hold', id], guardLogFile(rt.paths, id, 'hold')),
});
if (opt('--fault') === 'prepare-reply-lost') agent.afterPrepare = die;
const block = opt('--block-abort');
if (block) {
  const abort = agent.abort.bind(agent);
  agent.abort = async (p) => {
    if (existsSync(block)) die();
    return abort(p);
  };
}
const blockCommit = opt('--block-commit');
if (blockCommit) {
  const commit = agent.commit.bind(agent);
  const records = new MigrationRecords(rt.paths);
  agent.commit = async (p) => {
    if (existsSync(blockCommit) && (await records.get(p.migrationId))?.phase === 'prepared') die();
    return commit(p);
  };
}
const server = serveAgent(Duplex.from({ readable: process.stdin, writable: process.stdout }), agent, { logger: rt.logger });
await server.closed;
await agent.onDisconnect();
