import type { ContainerRuntimeState, ContainerStatus } from './types.js';

/**
 * The container state machine. Status is derived from facts (the recorded
 * state, whether the init is alive, the freezer), never
 * stored alone, so a crash cannot leave it lying.
 */
export function deriveStatus(state: ContainerRuntimeState, initAlive: boolean, frozen: boolean): ContainerStatus {
  if (state.status === 'creating' || state.status === 'removing') return state.status;
  if (state.status !== 'stopped' && initAlive) return frozen ? 'frozen' : 'running';
  // stopped by tsmigrate or ended by itself: either way its processes are gone
  return 'exited';
}

export type Verb = 'exec' | 'attach' | 'freeze' | 'thaw' | 'stop' | 'rm' | 'checkpoint' | 'move';

const allowed: Record<Verb, ContainerStatus[]> = {
  exec: ['running'],
  attach: ['running', 'frozen'],
  freeze: ['running', 'frozen'],
  thaw: ['running', 'frozen'],
  stop: ['running', 'frozen', 'exited'],
  rm: ['exited', 'creating'],
  checkpoint: ['running', 'frozen'],
  move: ['running'],
};

/** Illegal transitions are errors; returns a reason or undefined when allowed. */
export function refusal(verb: Verb, status: ContainerStatus): string | undefined {
  return allowed[verb].includes(status) ? undefined : `it is ${status}`;
}
