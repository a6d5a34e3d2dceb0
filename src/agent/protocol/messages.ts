/**
 * The JSON messages of the agent protocol (the envelopes; method params and
 * results are checked by agentSpec in ../schema.ts), and errors on the wire.
 *
 *   client -> agent  {type:'call', id, method, params, stream?}
 *   agent -> client  {type:'result', id, value} | {type:'error', id, code, message, fix?}
 *   either way       {type:'error', id: 0, ...}  the connection is unusable; the sender closes it
 * The first call must be `hello`; its params carry the protocol version.
 */
import { type ErrorCode, TsmError } from '../../errors/errors.js';
import { type Validator, any, lit, num, obj, oneOf, optional, str } from './validate.js';

export interface CallMsg {
  type: 'call';
  id: number;
  method: string;
  params: unknown;
  /** the stream id whose DATA frames carry this call's bulk argument */
  stream?: number;
}

export interface ResultMsg {
  type: 'result';
  id: number;
  value: unknown;
}

export interface WireError {
  code: string;
  message: string;
  fix?: string;
}

export interface ErrorMsg extends WireError {
  type: 'error';
  /** 0: about the connection, not one call */
  id: number;
}

const ID = num({ int: true, min: 1, max: 0xffff_ffff });
const MAX_TEXT = 1000;
const wireErrorShape = {
  code: str({ max: 32, pattern: /^E[A-Z0-9_]{1,31}$/ }),
  message: str({ max: MAX_TEXT + 3 }),
  fix: optional(str({ max: MAX_TEXT + 3 })),
};

export const callMsg: Validator<CallMsg> = obj<CallMsg>({
  type: lit('call'),
  id: ID,
  method: str({ max: 64 }),
  params: any(),
  stream: optional(ID),
});

export const replyMsg: Validator<ResultMsg | ErrorMsg> = oneOf(
  obj<ResultMsg>({ type: lit('result'), id: ID, value: any() }),
  obj<ErrorMsg>({ type: lit('error'), id: num({ int: true, min: 0, max: 0xffff_ffff }), ...wireErrorShape }),
);

/** The payload of an ABORT frame. */
export const wireError: Validator<WireError> = obj<WireError>(wireErrorShape);

/** One line, bounded: messages cross the wire and end up in a terminal. */
export function oneLine(s: string, max = MAX_TEXT): string {
  const t = s.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}...` : t;
}

/** Any error as it goes on the wire: TsmErrors keep code/message/fix, others become EPEER. */
export function toWireError(e: unknown): WireError {
  if (e instanceof TsmError) {
    return e.fix === undefined ? { code: e.code, message: oneLine(e.message) } : { code: e.code, message: oneLine(e.message), fix: oneLine(e.fix) };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return {
    code: 'EPEER',
    message: oneLine(`the peer agent failed: ${msg}`),
    fix: 'read the agent log on the peer; if it persists, report a tsmigrate bug',
  };
}

/** A TsmError from the wire (codes a newer peer invented still travel as strings). */
export function fromWireError(w: WireError, prefix = ''): TsmError {
  return new TsmError(w.code as ErrorCode, `${prefix}${w.message}`, w.fix === undefined ? {} : { fix: w.fix });
}

/** The error every pending call gets when the connection goes away. */
export function lostError(detail: string, cause?: unknown): TsmError {
  return new TsmError('EPEER', `the connection to the peer agent was lost (${oneLine(detail, 200)})`, {
    fix: 'check the SSH connection and the tsmigrate agent on the peer, then retry',
    cause,
  });
}
