import type { Runtime } from '../runtime/context.js';
import { isSameProcess } from './proc.js';
import { deriveStatus, refusal, type Verb } from './status.js';
import { TsmError } from '../errors/errors.js';
import type { ContainerView } from './types.js';

/** Read a container's records and the facts that decide its status. */
export async function loadView(rt: Runtime, name: string): Promise<ContainerView> {
  const config = await rt.store.config(name);
  const state = await rt.store.state(name);
  const exit = await rt.store.exitInfo(name);
  const alive = await isSameProcess(state.initPid, state.initStartTime);
  let frozen = false;
  if (alive) {
    const fs = await rt.cgroups(name).freezerState().catch(() => 'thawed' as const);
    frozen = fs !== 'thawed';
  }
  const status = deriveStatus(state, alive, frozen);
  return { config, state, status, ...(exit && !alive ? { exit } : {}) };
}

export function assertAllowed(view: ContainerView, verb: Verb): void {
  const why = refusal(verb, view.status);
  if (!why) return;
  const name = view.config.name;
  const fixes: Partial<Record<Verb, string>> = {
    exec: view.status === 'frozen' ? `thaw it first: tsmigrate thaw ${name}` : `start a new one with tsmigrate run`,
    freeze: 'only a running container can be frozen',
    thaw: 'only a frozen container can be thawed',
    rm: `stop it first (tsmigrate stop ${name}) or use tsmigrate rm -f ${name}`,
    checkpoint: 'only a running container can be checkpointed',
    move: view.status === 'frozen' ? `thaw it first: tsmigrate thaw ${name}` : 'only a running container can be moved',
  };
  throw new TsmError('EBAD_STATE', `cannot ${verb} container "${name}": ${why}`, { fix: fixes[verb] ?? 'check tsmigrate ps' });
}
