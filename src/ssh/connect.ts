import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import { TsmError } from '../errors/errors.js';
import { checkIdentityFile, type HostEntry } from '../hosts/config.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { appendKnownHost, fingerprint, KnownHosts, keyTypeOf, knownHostName, type VerifyDetail } from './known-hosts.js';
import { shCommand } from './quote.js';

/** What connectSsh needs of a host (a HostEntry from the hosts config fits). */
export type SshTarget = Pick<HostEntry, 'name' | 'user' | 'address' | 'port' | 'identity'>;

export interface ConnectOptions {
  /** checked in order; trust-on-first-use appends to the first */
  knownHostsFiles: string[];
  /** accept and record a host key no file knows (never one that changed) */
  trustOnFirstUse: boolean;
  /** for TCP connect + SSH handshake + authentication (default 15000) */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** ssh-agent socket; default $SSH_AUTH_SOCK; null = do not use an agent */
  agent?: string | null;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  logger?: Logger;
}

export interface ExitStatus {
  /** exit code, or null when killed by a signal */
  code: number | null;
  /** e.g. SIGKILL, or null */
  signal: string | null;
}

/**
 * A remote command: a Duplex (stdin/stdout) with `.stderr`. `exit` settles when
 * the exit status arrives (read stdout/stderr to their end for all output); it
 * rejects (EHOST_UNREACHABLE) when the connection is lost before that.
 */
export type SshChannel = ClientChannel & { readonly exit: Promise<ExitStatus>; readonly argv: readonly string[] };

export interface RunResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** `host:port`, with brackets for IPv6. */
export function hostPortOf(t: Pick<SshTarget, 'address' | 'port'>): string {
  return t.address.includes(':') ? `[${t.address}]:${t.port}` : `${t.address}:${t.port}`;
}

function where(t: SshTarget): string {
  return `${t.name} (${hostPortOf(t)})`;
}

const DEFAULT_HOST_KEY_ALGOS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/**
 * Ciphers in order of preference. Memory images are bulk data: with AES
 * instructions AES-GCM moves ~25% more per second than chacha20-poly1305
 * through ssh2 on these machines (124 vs 98 MiB/s on loopback), so it comes
 * first there; without them chacha20 does. All are AEAD or CTR+ETM, as OpenSSH offers.
 */
export function bulkCiphers(cpuinfo: string = readCpuinfo()): string[] {
  const aead = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'];
  const chacha = ['chacha20-poly1305@openssh.com'];
  const ctr = ['aes128-ctr', 'aes192-ctr', 'aes256-ctr'];
  return /^flags\s*:.*\baes\b/m.test(cpuinfo) ? [...aead, ...chacha, ...ctr] : [...chacha, ...aead, ...ctr];
}

function readCpuinfo(): string {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/** Host key algorithms with the ones known_hosts has keys for first (as OpenSSH orders them). */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) {
    const algos = t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t];
    for (const a of algos) if (DEFAULT_HOST_KEY_ALGOS.includes(a) && !first.includes(a)) first.push(a);
  }
  return [...first, ...DEFAULT_HOST_KEY_ALGOS.filter((a) => !first.includes(a))];
}

type Step = 'connect' | 'handshake' | 'authentication' | 'session';

type SshError = Error & { level?: string; code?: string };

const STEP_NOUN: Record<Step, string> = { connect: 'TCP connect', handshake: 'SSH handshake', authentication: 'authentication', session: 'session' };
const STEP_TEXT: Record<Step, string> = { connect: 'TCP connect to', handshake: 'SSH handshake with', authentication: 'authentication to', session: 'session with' };

/** ssh2's errors -> TsmError, once, naming the host and the step. */
export function mapSshError(err: SshError, t: SshTarget, step: Step, ctx: { timeoutMs: number; tried: string[] }): TsmError {
  if (err instanceof TsmError) return err;
  const at = where(t);
  const hp = hostPortOf(t);
  const reach = `check that sshd listens on ${hp} and that the host's url is right (tsmigrate host ls)`;
  const msg = err.message.split('\n')[0] ?? '';
  switch (err.level) {
    case 'client-socket': {
      const why: Record<string, string> = {
        ECONNREFUSED: 'connection refused',
        EHOSTUNREACH: 'no route to host',
        ENETUNREACH: 'network unreachable',
        ETIMEDOUT: 'connection timed out',
        ECONNRESET: 'connection reset',
        EPIPE: 'connection closed',
        EADDRNOTAVAIL: 'address not available',
      };
      const what = why[err.code ?? ''] ?? msg;
      return new TsmError('EHOST_UNREACHABLE', step === 'session' ? `lost the connection to ${at}: ${what}` : `${STEP_TEXT[step]} ${at} failed: ${what}`, { fix: reach, cause: err });
    }
    case 'client-dns':
      return new TsmError('EHOST_UNREACHABLE', `cannot resolve the address of ${at}: ${msg}`, { fix: 'check the address in the host\'s url', cause: err });
    case 'client-timeout':
      if (step === 'session' || /keepalive/i.test(msg)) {
        return new TsmError('EHOST_UNREACHABLE', `lost the connection to ${at}: no answer to keepalives`, { fix: 'check the network path and that the host is up', cause: err });
      }
      return new TsmError('EHOST_UNREACHABLE', `${STEP_TEXT[step]} ${at} timed out after ${ctx.timeoutMs} ms`, { fix: reach, cause: err });
    case 'client-authentication':
      return new TsmError('EHOST_AUTH', `authentication as ${t.user}@${hp} (${t.name}) failed; tried ${ctx.tried.length ? ctx.tried.join(', ') : 'nothing'}`, {
        fix: `add the public key to ~${t.user}/.ssh/authorized_keys on ${t.name}, or configure the right identity (tsmigrate host ls)`,
        cause: err,
      });
    case 'agent':
      return new TsmError('EHOST_AUTH', `ssh-agent failed while authenticating to ${at}: ${msg}`, { fix: 'check SSH_AUTH_SOCK and that the agent holds the key (ssh-add -l)', cause: err });
    default:
      return new TsmError('EHOST_UNREACHABLE', `${STEP_TEXT[step]} ${at} failed: ${msg}`, { fix: reach, cause: err });
  }
}

function hostKeyError(d: VerifyDetail, t: SshTarget, presented: Buffer, files: string[], trustOnFirstUse: boolean): TsmError {
  const hp = hostPortOf(t);
  const fp = fingerprint(presented);
  const rmName = knownHostName(t.address, t.port);
  switch (d.status) {
    case 'revoked':
      return new TsmError('EHOST_KEY_REVOKED', `host key for ${hp} (${t.name}) is revoked: ${d.keyType} ${fp} (${d.entry?.file}:${d.entry?.line})`, {
        fix: 'do not connect: the host must get a new host key, then record it in known_hosts',
      });
    case 'mismatch': {
      const e = d.entry;
      return new TsmError('EHOST_KEY_MISMATCH', `host key for ${hp} changed: expected ${e ? fingerprint(e.key) : '?'}, presented ${fp}`, {
        fix: `if the host was reinstalled, remove the old key with ssh-keygen -R '${rmName}' -f ${e?.file ?? files[0] ?? 'known_hosts'} (line ${e?.line ?? '?'}); otherwise someone may be intercepting the connection`,
      });
    }
    default: {
      const file = files[0] ?? 'known_hosts';
      if (d.known.length > 0) {
        const types = [...new Set(d.known.map((k) => k.keyType))].join(', ');
        return new TsmError('EHOST_KEY_UNKNOWN', `host ${hp} (${t.name}) presented a ${d.keyType} key (${fp}) but known_hosts has only ${types} keys for it`, {
          fix: `verify the new key out of band and add it to ${file}; trust-on-first-use does not apply when other keys are known`,
        });
      }
      return new TsmError('EHOST_KEY_UNKNOWN', `host key for ${hp} (${t.name}) is not known: ${d.keyType} ${fp}`, {
        fix: trustOnFirstUse
          ? `could not record it in ${file}`
          : `check the fingerprint out of band and add the key to ${file} (ssh-keyscan -p ${t.port} ${t.address}), or set trustOnFirstUse for the host`,
      });
    }
  }
}

/** 'close' fires once: with the reason when the connection was lost, undefined after close(). */
export interface SshSession {
  on(event: 'close', listener: (err: TsmError | undefined) => void): this;
  once(event: 'close', listener: (err: TsmError | undefined) => void): this;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class SshSession extends EventEmitter {
  #closed = false;
  #closedByUs = false;
  #error: TsmError | undefined;
  readonly #open = new Set<{ reject: (e: TsmError) => void }>();

  constructor(
    readonly target: SshTarget,
    /** SHA256:... of the host key that was accepted */
    readonly hostKeyFingerprint: string,
    private readonly client: InstanceType<typeof ssh2.Client>,
    private readonly ctx: { timeoutMs: number; tried: string[] },
  ) {
    super();
    client.on('error', (e: SshError) => {
      this.#error ??= mapSshError(e, target, 'session', ctx);
    });
    client.on('close', () => {
      if (this.#closed) return;
      this.#closed = true;
      const err = this.#error ?? new TsmError('EHOST_UNREACHABLE', `the connection to ${where(target)} closed`, { fix: 'check that the host is up and sshd is running' });
      for (const p of this.#open) p.reject(err);
      this.#open.clear();
      // 'close' with the reason, undefined when we closed it ourselves
      this.emit('close', this.#closedByUs ? undefined : err);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs argv on the host; every argument is single-quoted for the remote shell. */
  exec(argv: readonly string[]): Promise<SshChannel> {
    const cmd = shCommand(argv);
    const t = this.target;
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(this.#error ?? new TsmError('EHOST_UNREACHABLE', `the connection to ${where(t)} is closed`, { fix: 'connect again' }));
        return;
      }
      this.client.exec(cmd, (err, ch) => {
        if (err) {
          reject(
            this.#closed
              ? (this.#error ?? new TsmError('EHOST_UNREACHABLE', `the connection to ${where(t)} closed`, { fix: 'connect again', cause: err }))
              : new TsmError('EHOST_EXEC', `${where(t)} refused to run ${argv[0]}: ${err.message}`, {
                  fix: 'too many sessions on one connection (sshd MaxSessions)? close some, or check the host\'s sshd log',
                  cause: err,
                }),
          );
          return;
        }
        let settle!: { resolve: (s: ExitStatus) => void; reject: (e: TsmError) => void };
        const exit = new Promise<ExitStatus>((res, rej) => (settle = { resolve: res, reject: rej }));
        exit.catch(() => undefined); // a caller that never awaits exit must not crash the process
        const pending = {
          reject: (e: TsmError) => settle.reject(new TsmError(e.code, `${e.message} while running ${argv[0]}`, { fix: e.fix ?? 'connect again', cause: e })),
        };
        this.#open.add(pending);
        let done = false;
        ch.on('exit', (code: number | null, signal?: string) => {
          if (done) return;
          done = true;
          this.#open.delete(pending);
          settle.resolve({ code: typeof code === 'number' ? code : null, signal: signal ?? null });
        });
        ch.on('close', () => {
          if (done) return;
          done = true;
          this.#open.delete(pending);
          if (this.#closed) pending.reject(this.#error ?? new TsmError('EHOST_UNREACHABLE', `the connection to ${where(t)} closed`, { fix: 'connect again' }));
          else settle.resolve({ code: null, signal: null }); // closed without an exit status
        });
        Object.defineProperty(ch, 'exit', { value: exit, enumerable: false });
        Object.defineProperty(ch, 'argv', { value: [...argv], enumerable: false });
        resolve(ch as SshChannel);
      });
    });
  }

  /** Runs argv to completion, collecting output (up to maxBytes each, default 16 MiB); stdin is closed. */
  async run(argv: readonly string[], opts: { input?: string | Buffer; maxBytes?: number } = {}): Promise<RunResult> {
    const ch = await this.exec(argv);
    const max = opts.maxBytes ?? 16 << 20;
    const collect = (s: NodeJS.ReadableStream) =>
      new Promise<string>((resolve) => {
        const chunks: Buffer[] = [];
        let n = 0;
        s.on('data', (d: Buffer) => {
          if (n < max) chunks.push(d.subarray(0, max - n));
          n += d.length;
        });
        s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
    const out = collect(ch);
    const err = collect(ch.stderr);
    ch.end(opts.input);
    const status = await ch.exit;
    const [stdout, stderr] = await Promise.all([out, err]);
    return { ...status, stdout, stderr };
  }

  /** Runs `true` on the host: proves the session can start commands. */
  async ping(): Promise<void> {
    const r = await this.run(['true']);
    if (r.code !== 0) {
      throw new TsmError('EHOST_EXEC', `${where(this.target)} could not run "true" (exit ${r.code ?? r.signal})${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]}` : ''}`, {
        fix: 'check the login shell of the user on the host',
      });
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closedByUs = true;
    this.client.end();
  }
}

/**
 * Connects and authenticates (identity file and/or ssh-agent), checking the
 * host key against known_hosts strictly. Every failure is a TsmError:
 * EHOST_UNREACHABLE, EHOST_AUTH, EHOST_KEY_UNKNOWN, EHOST_KEY_MISMATCH, EHOST_KEY_REVOKED.
 */
export async function connectSsh(host: SshTarget, opts: ConnectOptions): Promise<SshSession> {
  const log = opts.logger ?? silentLogger;
  const timeoutMs = opts.timeoutMs ?? 15000;
  const agent = opts.agent === undefined ? process.env['SSH_AUTH_SOCK'] || null : opts.agent;
  const tried: string[] = [];
  const ctx = { timeoutMs, tried };
  opts.signal?.throwIfAborted();

  let privateKey: Buffer | undefined;
  if (host.identity) {
    const id = await checkIdentityFile(host.identity, { code: 'EHOST_AUTH', who: `identity file of host ${host.name}`, allowEncrypted: agent !== null });
    if (id.encrypted) log.debug(`${host.identity} has a passphrase: leaving it to ssh-agent`);
    else {
      privateKey = id.data;
      tried.push(`identity ${host.identity}`);
    }
  }
  if (agent) tried.push(`ssh-agent ${agent}`);
  if (!privateKey && !agent) {
    throw new TsmError('EHOST_AUTH', `no way to authenticate to ${where(host)}: it has no identity and SSH_AUTH_SOCK is not set`, {
      fix: `give the host an identity (tsmigrate host rm ${host.name}, then host add ... --identity FILE) or run ssh-agent with the key loaded`,
    });
  }

  const files = opts.knownHostsFiles;
  const known = await KnownHosts.load(files);
  for (const p of known.problems) log.debug(`${p.file}:${p.line}: skipped: ${p.message}`);
  const knownTypes = known.lookup(host.address, host.port).filter((e) => e.marker === null).map((e) => e.keyType);

  const client = new ssh2.Client();
  return new Promise<SshSession>((resolve, reject) => {
    let step: Step = 'connect';
    let settled = false;
    let keyError: TsmError | undefined;
    let firstError: TsmError | undefined;
    let acceptedFp = '';

    const finish = (err: TsmError | Error | undefined, session?: SshSession) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        client.removeAllListeners('ready');
        client.on('error', () => undefined);
        client.destroy();
        reject(err);
      } else if (session) resolve(session);
    };
    const onAbort = () => finish(opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void): void => {
      const d = known.check(host.address, host.port, key);
      const fp = fingerprint(key);
      if (d.status === 'match') {
        acceptedFp = fp;
        log.debug(`host key of ${where(host)} matches ${d.entry?.file}:${d.entry?.line} (${fp})`);
        verify(true);
        return;
      }
      if (d.status === 'unknown' && d.known.length === 0 && opts.trustOnFirstUse && files[0]) {
        const file = files[0];
        appendKnownHost(file, host.address, host.port, key).then(
          () => {
            acceptedFp = fp;
            log.warn(`trusting ${where(host)} on first use: recorded its ${keyTypeOf(key)} key ${fp} in ${file}`);
            verify(true);
          },
          (e: Error) => {
            keyError = new TsmError('EHOST_KEY_UNKNOWN', `host key for ${hostPortOf(host)} (${host.name}) is not known and could not be recorded in ${file}: ${e.message}`, {
              fix: `make ${file} writable, or add the key by hand`,
              cause: e,
            });
            verify(false);
          },
        );
        return;
      }
      keyError = hostKeyError(d, host, key, files, opts.trustOnFirstUse);
      verify(false);
    };

    client.on('connect', () => (step = 'handshake'));
    client.on('handshake', () => (step = 'authentication'));
    client.on('error', (e: SshError) => {
      if (settled) return;
      if (keyError) return finish(keyError);
      const mapped = mapSshError(e, host, step, ctx);
      // signing failures and agent errors are not fatal: ssh2 goes on to the next method
      if (e.level === 'agent' || (e.level === 'client-authentication' && /^Error signing/.test(e.message))) {
        log.debug(`${where(host)}: ${e.message}`);
        firstError ??= mapped;
        return;
      }
      finish(mapped);
    });
    client.on('close', () => {
      finish(
        keyError ??
          firstError ??
          new TsmError('EHOST_UNREACHABLE', `${where(host)} closed the connection during the ${STEP_NOUN[step]}`, {
            fix: `check the host's sshd log (too many connections? MaxStartups)`,
          }),
      );
    });
    client.on('ready', () => {
      step = 'session';
      // RPC round trips are small writes answered by small writes: without this, Nagle's
      // algorithm and delayed ACKs add ~40 ms to each (measured: 45 ms per call, 1-2 ms with it)
      client.setNoDelay(true);
      const session = new SshSession(host, acceptedFp, client, ctx);
      finish(undefined, session);
    });

    const cfg: ConnectConfig = {
      host: host.address,
      port: host.port,
      username: host.user,
      readyTimeout: timeoutMs,
      keepaliveInterval: opts.keepaliveIntervalMs ?? 5000,
      keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      hostVerifier,
      algorithms: {
        serverHostKey: hostKeyAlgorithms(knownTypes) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
        cipher: bulkCiphers() as NonNullable<ConnectConfig['algorithms']>['cipher'],
      },
      tryKeyboard: false,
    };
    if (privateKey) cfg.privateKey = privateKey;
    if (agent) cfg.agent = agent;
    try {
      client.connect(cfg);
    } catch (e) {
      finish(mapSshError(e as SshError, host, 'connect', ctx));
    }
  });
}
