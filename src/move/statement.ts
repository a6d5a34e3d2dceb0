/**
 * What the source of a move (or of a DR restore) signs for the peer, which
 * checks it against its trusted keys (Signing.verify) before it restores:
 *  - at begin, before anything is received: this migration of this container,
 *    with this config, on this very connection (the challenge the peer's hello gave);
 *  - at prepare, before the restored copy can run: the digests of every stream
 *    that arrived (images and upper layer), which the peer compares with what it received.
 * The statement travels as the exact JSON text signed; the peer verifies
 * those bytes, then parses them strictly. Pure.
 */
import { isDeepStrictEqual } from 'node:util';
import { arr, lit, obj, str, type Validator } from '../agent/protocol/validate.js';
import type { BeginRequest, SignedStatement } from '../agent/api.js';
import type { Signing } from '../sign/signing.js';
import type { Purpose } from '../sign/signature.js';
import { beginFields, MIGRATION_ID, STREAM_DIGEST } from '../agent/schema.js';
import { TsmError } from '../errors/errors.js';

export const STATEMENT_FORMAT = 'tsmigrate-move/1';
export const CHALLENGE = str({ max: 64, min: 64, pattern: /^[0-9a-f]{64}$/ });

/** The part of a begin request the source vouches for. */
export type BeginFacts = Pick<BeginRequest, 'migrationId' | 'epoch' | 'name' | 'config' | 'network' | 'stdio' | 'criuOptions'>;

export interface BeginStatement extends BeginFacts {
  format: typeof STATEMENT_FORMAT;
  step: 'begin';
  challenge: string;
}

export interface SumsStatement {
  format: typeof STATEMENT_FORMAT;
  step: 'sums';
  challenge: string;
  migrationId: string;
  images: string;
  upper: string[];
}


const beginStatement: Validator<BeginStatement> = obj<BeginStatement>({
  format: lit(STATEMENT_FORMAT),
  step: lit('begin'),
  challenge: CHALLENGE,
  ...beginFields,
});

const sumsStatement: Validator<SumsStatement> = obj<SumsStatement>({
  format: lit(STATEMENT_FORMAT),
  step: lit('sums'),
  challenge: CHALLENGE,
  migrationId: MIGRATION_ID,
  images: STREAM_DIGEST,
  upper: arr(STREAM_DIGEST, { max: 4096 }),
});

export function beginStatementText(challenge: string, f: BeginFacts): string {
  const s: BeginStatement = {
    format: STATEMENT_FORMAT, step: 'begin', challenge,
    migrationId: f.migrationId, epoch: f.epoch, name: f.name, config: f.config, network: f.network, stdio: f.stdio, criuOptions: f.criuOptions,
  };
  return JSON.stringify(s);
}

export function sumsStatementText(challenge: string, migrationId: string, expect: { images: string; upper: string[] }): string {
  const s: SumsStatement = { format: STATEMENT_FORMAT, step: 'sums', challenge, migrationId, images: expect.images, upper: expect.upper };
  return JSON.stringify(s);
}

function refused(id: string, what: string): TsmError {
  return new TsmError('EUNTRUSTED', `migration ${id}: the signed statement does not match the request (${what}); nothing was restored`, {
    fix: 'install the same tsmigrate version on both hosts and retry the move',
  });
}

function parse<T>(v: Validator<T>, text: string, id: string): T {
  try {
    return v(JSON.parse(text), 'statement');
  } catch (e) {
    throw refused(id, (e as Error).message.replace(/^bad message: /, ''));
  }
}

/** Throws unless the (signature-checked) begin statement says exactly what the request asks, on this connection. */
export function checkBegin(text: string, challenge: string, req: BeginFacts): void {
  const s = parse(beginStatement, text, req.migrationId);
  if (s.challenge !== challenge) throw refused(req.migrationId, 'it was signed for another connection');
  const { format: _f, step: _s, challenge: _c, ...facts } = s;
  const asked: BeginFacts = {
    migrationId: req.migrationId, epoch: req.epoch, name: req.name, config: req.config, network: req.network, stdio: req.stdio, criuOptions: req.criuOptions,
  };
  for (const k of Object.keys(asked) as Array<keyof BeginFacts>) {
    if (!isDeepStrictEqual(facts[k], asked[k])) throw refused(req.migrationId, `${k} differs`);
  }
}

/** Throws unless the (signature-checked) sums statement names exactly the streams that arrived. */
export function checkSums(text: string, challenge: string, migrationId: string, arrived: { images: string | undefined; upper: string[] }): void {
  const s = parse(sumsStatement, text, migrationId);
  if (s.challenge !== challenge) throw refused(migrationId, 'it was signed for another connection');
  if (s.migrationId !== migrationId) throw refused(migrationId, 'migrationId differs');
  if (s.images !== arrived.images || !isDeepStrictEqual(s.upper, arrived.upper)) {
    throw new TsmError('EINTEGRITY', `migration ${migrationId}: what arrived is not what the source signed; nothing was resumed`, {
      fix: 'the move was rolled back; retry it, and if it happens again check the network path and memory of both hosts',
    });
  }
}

export async function signStatement(signing: Pick<Signing, 'sign'>, purpose: Purpose, statement: string): Promise<SignedStatement> {
  return { statement, signature: await signing.sign(purpose, Buffer.from(statement)) };
}
