import { TsmError } from '../errors/errors.js';

export type Selector = { kind: 'latest' } | { kind: 'at'; time: Date } | { kind: 'id'; id: string };

/** Parse --at: an ISO 8601 time ("2026-11-29T05:00:00Z", "2026-11-29 05:00") or a past offset ("2h", "30m", "1d" ago). */
export function parseAt(text: string, now: Date): Date {
  const rel = /^(\d+)([smhd])$/.exec(text);
  if (rel) return new Date(now.getTime() - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[rel[2] as 's' | 'm' | 'h' | 'd']);
  const t = Date.parse(text.includes(' ') && !text.includes('T') ? text.replace(' ', 'T') : text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t)) {
    throw new TsmError('EINVAL_ARG', `invalid --at "${text}"`, { fix: 'give a time such as 2026-11-29T05:00:00Z, or how long ago such as 2h' });
  }
  return new Date(t);
}

/**
 * The checkpoints to try, in order (pure). --latest: every checkpoint of the
 * container, newest first (a bad one falls through to the next); --at: the
 * newest taken at or before that time; an id: that one.
 */
export function candidates(snaps: ReadonlyArray<{ id: string; container: string; createdAt: string }>, name: string, sel: Selector): { ids: string[]; fallback: boolean } {
  const mine = snaps.filter((s) => s.container === name).sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  if (sel.kind === 'latest') return { ids: mine.map((s) => s.id), fallback: true };
  if (sel.kind === 'at') {
    const at = sel.time.getTime();
    const s = mine.find((x) => Date.parse(x.createdAt) <= at);
    return { ids: s ? [s.id] : [], fallback: false };
  }
  const s = snaps.find((x) => x.id === sel.id);
  if (s && s.container !== name) {
    throw new TsmError('EINVAL_ARG', `checkpoint ${sel.id} is of container "${s.container}", not "${name}"`, { fix: `restore it as ${s.container}, or choose a checkpoint of ${name}` });
  }
  return { ids: s ? [s.id] : [], fallback: false };
}
