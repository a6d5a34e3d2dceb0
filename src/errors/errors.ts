/**
 * Typed errors. Every error tsmigrate raises on purpose is a TsmError with a
 * stable `code`, a one-line message saying what is wrong, and a `fix` saying
 * what to do. Only src/cli prints them (and maps them to exit codes).
 */
export type ErrorCode =
  | 'EINVAL_NAME'
  | 'EINVAL_ARG'
  | 'ENOT_ROOT'
  | 'EEXIST_CONTAINER'
  | 'ENOENT_CONTAINER'
  | 'ENOENT_IMAGE'
  | 'EEXIST_IMAGE'
  | 'EIMAGE_IN_USE'
  | 'EBAD_STATE'
  | 'EBUSY'
  | 'ECGROUP'
  | 'ECGROUP_MISSING'
  | 'EFREEZE_TIMEOUT'
  | 'ENATIVE'
  | 'ESHIM'
  | 'ENETWORK'
  | 'EMOUNT'
  | 'ECRIU'
  | 'ECRIU_MISSING'
  | 'ECRIU_TOO_OLD'
  | 'EIO'
  | 'EINTEGRITY'
  /** a checkpoint no trusted key signed (sign/verify.ts) */
  | 'EUNTRUSTED'
  | 'ENOENT_CHECKPOINT'
  | 'EEXIST_CHECKPOINT'
  | 'EPREFLIGHT'
  | 'EMOVE_UNFINISHED'
  /** the peer aborted a migration (its held copy expired, or the source aborted it): it refuses to commit */
  | 'EMIGRATION_ABORTED'
  | 'EDOWNTIME'
  | 'EMOVE_ABORTED'
  | 'EINTERRUPTED'
  | 'ENOSPC'
  | 'EPROTO'
  | 'EPEER'
  | 'ECONFIG'
  | 'ENOENT_HOST'
  | 'EEXIST_HOST'
  | 'EHOST_UNREACHABLE'
  | 'EHOST_AUTH'
  | 'EHOST_KEY_UNKNOWN'
  | 'EHOST_KEY_MISMATCH'
  | 'EHOST_KEY_REVOKED'
  | 'EHOST_EXEC'
  /** the agent refuses: a method outside this connection's roles, or a path outside its store directories */
  | 'EFORBIDDEN'
  | 'EINTERNAL';

export class TsmError extends Error {
  readonly code: ErrorCode;
  readonly fix: string | undefined;
  constructor(code: ErrorCode, message: string, opts: { fix?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TsmError';
    this.code = code;
    this.fix = opts.fix;
  }
  /** One line: "problem; fix". */
  oneLine(): string {
    return this.fix ? `${this.message}; ${this.fix}` : this.message;
  }
}

export function isTsmError(e: unknown, code?: ErrorCode): e is TsmError {
  return e instanceof TsmError && (code === undefined || e.code === code);
}

/** Exit codes, decided in one place. */
export function exitCodeFor(e: unknown): number {
  if (!(e instanceof TsmError)) return 70;
  switch (e.code) {
    case 'EINVAL_NAME':
    case 'EINVAL_ARG':
      return 2;
    case 'ENOT_ROOT':
      return 4;
    case 'EBUSY':
      return 75;
    case 'EFORBIDDEN':
      return 77;
    default:
      return 1;
  }
}
