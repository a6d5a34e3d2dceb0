/**
 * The phases of a migration and the transitions between them: one table for
 * the source's journal, one for the peer's migration records, and what
 * `recover` does from each phase. The journal and the records refuse a
 * transition the table does not list, so a phase can only be reached the way
 * the machine says.
 */

export type SourcePhase =
  | 'started'
  | 'preflight-ok'
  | 'begun'
  | 'upper-sent'
  | 'frozen'
  | 'dumped'
  | 'sent'
  | 'prepared'
  | 'decided'
  | 'committed'
  | 'done'
  | 'abort-pending'
  | 'aborted';

export type PeerPhase = 'begun' | 'receiving' | 'prepared' | 'committed' | 'aborted';

/** Before the point of no return every phase may roll back (to abort-pending, or aborted once the peer confirmed). */
const rollback: SourcePhase[] = ['abort-pending', 'aborted'];

export const SOURCE_TRANSITIONS: Readonly<Record<SourcePhase, readonly SourcePhase[]>> = {
  started: ['preflight-ok', ...rollback],
  'preflight-ok': ['begun', ...rollback],
  begun: ['upper-sent', ...rollback],
  'upper-sent': ['frozen', ...rollback],
  frozen: ['dumped', ...rollback],
  dumped: ['sent', ...rollback],
  sent: ['prepared', ...rollback],
  prepared: ['decided', ...rollback],
  // the point of no return for the source: from here it only asks the peer to commit.
  // The peer may still have given its held copy up (its hold limit): then the source
  // copy, never killed before a confirmed commit, runs again
  decided: ['committed', 'aborted'],
  committed: ['done'],
  done: [],
  'abort-pending': ['aborted'],
  aborted: [],
};

export const PEER_TRANSITIONS: Readonly<Record<PeerPhase, readonly PeerPhase[]>> = {
  begun: ['receiving', 'aborted'],
  receiving: ['receiving', 'prepared', 'aborted'],
  // a held copy goes on commit, or on abort (the source's, recover's, or its hold limit)
  prepared: ['committed', 'aborted'],
  committed: [],
  aborted: [],
};

export function sourceMayGo(from: SourcePhase, to: SourcePhase): boolean {
  return SOURCE_TRANSITIONS[from].includes(to);
}

export function peerMayGo(from: PeerPhase, to: PeerPhase): boolean {
  return PEER_TRANSITIONS[from].includes(to);
}

export function isFinal(p: SourcePhase): boolean {
  return SOURCE_TRANSITIONS[p].length === 0;
}

/** Is the decision to complete taken (the source copy no longer runs again by itself)? */
export function isDecided(p: SourcePhase): boolean {
  return p === 'decided' || p === 'committed' || p === 'done';
}

/** Is the container frozen on the source in this phase (until the rollback or the removal)? */
export function isFrozen(p: SourcePhase): boolean {
  return ['frozen', 'dumped', 'sent', 'prepared', 'decided', 'committed'].includes(p);
}

/**
 * What recovery does from a source phase a crash left behind:
 * - rollback: abort on the peer (idempotent), run the source copy again;
 * - retry-abort: the source copy runs already, the peer must still be told;
 * - complete: commit on the peer (or, if the peer gave the copy up, roll back), then remove the source copy;
 * - remove-source: the peer runs it; remove the source copy;
 * - none: final.
 */
export type RecoveryAction = 'rollback' | 'retry-abort' | 'complete' | 'remove-source' | 'none';

export function recoveryFor(p: SourcePhase): RecoveryAction {
  if (isFinal(p)) return 'none';
  if (p === 'abort-pending') return 'retry-abort';
  if (p === 'committed') return 'remove-source';
  if (p === 'decided') return 'complete';
  return 'rollback';
}

/**
 * What the source concludes from the peer's record of the migration when it
 * must complete: commit where the peer holds a prepared copy; the peer runs it
 * already; or the peer has no copy (aborted, expired, never known): run ours.
 */
export function completionFrom(peer: PeerPhase | 'unknown'): 'commit' | 'committed' | 'peer-gave-up' | 'not-ready' {
  if (peer === 'prepared') return 'commit';
  if (peer === 'committed') return 'committed';
  if (peer === 'aborted' || peer === 'unknown') return 'peer-gave-up';
  return 'not-ready';
}
