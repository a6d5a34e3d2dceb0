import { promises as fs, constants } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { Document, LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { parseAgentSettings, type AgentSettings } from '../agent/access.js';
import { TsmError, type ErrorCode } from '../errors/errors.js';
import { writeFileAtomic } from '../state/atomic.js';
import { withLock } from '../state/lock.js';
import { parsePublicKey, type PublicKey } from '../sign/public-key.js';

/**
 * The hosts config: a YAML file naming the peers `move` can talk to.
 *
 *   knownHosts: /etc/tsmigrate/known_hosts      # optional, this is the default
 *   hosts:
 *     b:
 *       url: ssh://root@127.0.0.2:2222
 *       identity: /root/.ssh/id_ed25519         # optional (else ssh-agent)
 *       command: [tsmigrate, --root, /var/lib/tsm-b]   # optional; the peer runs `<command> agent --stdio`
 *       knownHosts: /etc/tsmigrate/known_hosts.b # optional, overrides the top-level one
 *       trustOnFirstUse: false                   # optional
 *   trust:                                       # optional: keys whose checkpoints this host accepts
 *     - tsmigrate-ed25519 AAAA... b              # (its own key is always trusted; tsmigrate key trust)
 *
 * Relative paths are relative to the config file's directory; `~/` is the home directory.
 */
export const DEFAULT_CONFIG = '/etc/tsmigrate/config.yaml';
export const DEFAULT_KNOWN_HOSTS = '/etc/tsmigrate/known_hosts';
export const DEFAULT_COMMAND: readonly string[] = ['tsmigrate'];
export const HOST_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export interface HostEntry {
  name: string;
  /** normalised ssh://USER@ADDRESS:PORT */
  url: string;
  user: string;
  /** a host name or an IP address (IPv6 without brackets), lowercased */
  address: string;
  port: number;
  /** absolute path of the private key, or null (ssh-agent only) */
  identity: string | null;
  /** argv prefix the peer runs: `<command...> agent --stdio` */
  command: string[];
  /** absolute path; null = the config's top-level knownHosts */
  knownHosts: string | null;
  trustOnFirstUse: boolean;
}

export interface HostsConfig {
  /** absolute path of the config file (it need not exist) */
  file: string;
  /** absolute path of the default known_hosts file */
  knownHosts: string;
  /** sorted by name */
  hosts: HostEntry[];
  /** named checkpoint stores (`--store NAME`) */
  stores: StoreEntry[];
  /** public keys whose signed checkpoints and moves this host accepts (besides its own) */
  trust: PublicKey[];
  /** what this host's agent serves its clients (agent/access.ts) */
  agent: AgentSettings;
}

export interface StoreEntry {
  name: string;
  /** /PATH on this host, or HOST:/PATH */
  location: string;
  /** absolute path of the key file, or null (not encrypted) */
  encryptKey: string | null;
}

/** --config, else $TSMIGRATE_CONFIG, else /etc/tsmigrate/config.yaml; absolute. */
export function resolveConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const f = flag ?? env['TSMIGRATE_CONFIG'];
  return path.resolve(f !== undefined && f !== '' ? f : DEFAULT_CONFIG);
}

/** A problem with one value; callers decide the code and where it came from. */
class FieldError extends Error {
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

const URL_FORM = 'ssh://USER@ADDRESS[:PORT]';

/** Parses ssh://USER@ADDRESS[:PORT] (port default 22). Throws EINVAL_ARG. */
export function parseHostUrl(url: string): { user: string; address: string; port: number; url: string } {
  try {
    return parseUrlOrThrow(url);
  } catch (e) {
    if (e instanceof FieldError) throw new TsmError('EINVAL_ARG', e.message, { fix: e.fix });
    throw e;
  }
}

function parseUrlOrThrow(url: unknown): { user: string; address: string; port: number; url: string } {
  if (typeof url !== 'string') throw new FieldError(`url must be a string like ${URL_FORM}`, `write url: ${URL_FORM}`);
  const shown = JSON.stringify(url.length > 100 ? `${url.slice(0, 100)}...` : url);
  const m = /^ssh:\/\/([^@/?#\s]+)@(\[[^\]\s]*\]|[^:/?#@\s[\]]+)(?::([0-9]+))?\/?$/i.exec(url);
  if (!m) throw new FieldError(`invalid url ${shown}: expected ${URL_FORM}`, 'write it like ssh://root@127.0.0.2:2222');
  const user = m[1] ?? '';
  let address = (m[2] ?? '').toLowerCase();
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/.test(user)) {
    throw new FieldError(`invalid user ${JSON.stringify(user)} in url ${shown}`, 'use a login name of letters, digits, _ . - (at most 32)');
  }
  if (address.startsWith('[')) {
    address = address.slice(1, -1);
    if (isIP(address) !== 6) throw new FieldError(`invalid IPv6 address in url ${shown}`, 'write IPv6 addresses in brackets, e.g. ssh://root@[::1]:2222');
  } else if (/^[0-9.]+$/.test(address)) {
    if (isIP(address) !== 4) throw new FieldError(`invalid IPv4 address in url ${shown}`, 'use four numbers 0-255, e.g. 127.0.0.2');
  } else if (
    address.length > 253 ||
    !address.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l))
  ) {
    throw new FieldError(`invalid host address in url ${shown}`, 'use a DNS name or an IP address');
  }
  let port = 22;
  if (m[3] !== undefined) {
    port = Number(m[3]);
    if (!Number.isInteger(port) || port < 1 || port > 65535 || m[3].length > 5) {
      throw new FieldError(`invalid port ${m[3]} in url ${shown}`, 'use a port from 1 to 65535');
    }
  }
  const hostPart = address.includes(':') ? `[${address}]` : address;
  return { user, address, port, url: `ssh://${user}@${hostPart}${port === 22 ? '' : `:${port}`}` };
}

function checkName(name: unknown): string {
  if (typeof name === 'string' && HOST_NAME_PATTERN.test(name)) return name;
  throw new FieldError(
    `invalid host name ${JSON.stringify(String(name).slice(0, 80))}: use 1-63 characters [a-z0-9_.-], starting with a letter or digit`,
    'choose a name like "b" or "node-2"',
  );
}

/** Validates a host name; throws EINVAL_NAME. */
export function validateHostName(name: string): string {
  try {
    return checkName(name);
  } catch (e) {
    if (e instanceof FieldError) throw new TsmError('EINVAL_NAME', e.message, { fix: e.fix });
    throw e;
  }
}

function checkCommand(v: unknown): string[] {
  const fix = 'write it as a list of words, e.g. command: [tsmigrate, --root, /var/lib/tsm-b]';
  if (!Array.isArray(v) || v.length === 0) throw new FieldError('command must be a non-empty list of strings', fix);
  for (const a of v) {
    if (typeof a !== 'string' || a === '') throw new FieldError('command must be a list of non-empty strings', fix);
    if (a.includes('\0')) throw new FieldError('command contains a NUL byte', 'remove it');
  }
  return v as string[];
}

function checkPath(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '' || v.includes('\0')) throw new FieldError(`${what} must be a file path`, `write ${what}: /path/to/file`);
  return v;
}

/** ~/x -> home; relative -> against base. */
function resolvePath(p: string, base: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(os.homedir(), p.slice(1));
  return path.resolve(base, p);
}

/** Splits `--command "CMD ARGS"` on whitespace. */
export function splitCommand(s: string): string[] {
  const words = s.split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) throw new TsmError('EINVAL_ARG', 'empty --command', { fix: 'give the program the peer runs, e.g. --command "tsmigrate --root /var/lib/tsm-b"' });
  return words;
}

const ROOT_KEYS = ['hosts', 'knownHosts', 'stores', 'trust', 'agent'] as const;
export const MAX_TRUSTED = 1024;
const STORE_KEYS = ['location', 'encryptKey'] as const;
const HOST_KEYS = ['url', 'identity', 'command', 'knownHosts', 'trustOnFirstUse'] as const;

interface ParsedFile {
  doc: Document.Parsed;
  config: HostsConfig;
}

function parseFile(text: string, file: string): ParsedFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, keepSourceTokens: false });
  const at = (node: YamlNode | null | undefined | unknown): string => {
    const r = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return r ? `${file}:${lc.linePos(r[0]).line}` : file;
  };
  const fail = (where: string, message: string, fix: string): never => {
    throw new TsmError('ECONFIG', `${where}: ${message}`, { fix });
  };
  const firstErr = doc.errors[0];
  if (firstErr) {
    const where = firstErr.linePos ? `${file}:${firstErr.linePos[0].line}` : firstErr.pos ? `${file}:${lc.linePos(firstErr.pos[0]).line}` : file;
    fail(where, `not valid YAML: ${firstErr.message.split('\n')[0]}`, 'fix the YAML syntax');
  }
  const dir = path.dirname(file);
  const config: HostsConfig = { file, knownHosts: DEFAULT_KNOWN_HOSTS, hosts: [], stores: [], trust: [], agent: {} };
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) return { doc, config };
  if (!isMap(root)) return fail(at(root), 'the top level must be a mapping with "hosts:"', 'start the file with hosts:');
  const wrap = <T>(node: unknown, fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      if (e instanceof FieldError) return fail(at(node), e.message, e.fix);
      throw e;
    }
  };
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    if (key === 'knownHosts') {
      config.knownHosts = wrap(pair.value, () => resolvePath(checkPath(isScalar(pair.value) ? pair.value.value : pair.value, 'knownHosts'), dir));
    } else if (key === 'hosts') {
      const hosts = pair.value;
      if (hosts === null || (isScalar(hosts) && (hosts.value === null || hosts.value === undefined))) continue;
      if (!isMap(hosts)) return fail(at(hosts ?? pair.key), 'hosts must be a mapping of NAME: {url: ...}', `write one NAME: mapping per host under hosts:, each with url: ${URL_FORM}`);
      for (const hp of hosts.items) {
        const name = wrap(hp.key, () => checkName(isScalar(hp.key) ? hp.key.value : hp.key));
        const body = hp.value;
        if (!isMap(body)) return fail(at(body ?? hp.key), `host "${name}" must be a mapping with at least url:`, `give it keys under ${name}:, at least url: ${URL_FORM}`);
        const seen = new Map<string, unknown>();
        for (const f of body.items) {
          const k = isScalar(f.key) ? f.key.value : undefined;
          if (typeof k !== 'string' || !(HOST_KEYS as readonly string[]).includes(k)) {
            return fail(at(f.key), `unknown key ${JSON.stringify(String(k))} in host "${name}"`, `use only ${HOST_KEYS.join(', ')}`);
          }
          seen.set(k, f.value);
        }
        const js = body.toJS(doc) as Record<string, unknown>;
        if (!seen.has('url')) return fail(at(hp.key), `host "${name}" has no url`, `add url: ${URL_FORM}`);
        const u = wrap(seen.get('url'), () => parseUrlOrThrow(js['url']));
        const entry: HostEntry = {
          name,
          url: u.url,
          user: u.user,
          address: u.address,
          port: u.port,
          identity: null,
          command: [...DEFAULT_COMMAND],
          knownHosts: null,
          trustOnFirstUse: false,
        };
        if (seen.has('identity')) entry.identity = wrap(seen.get('identity'), () => resolvePath(checkPath(js['identity'], 'identity'), dir));
        if (seen.has('command')) entry.command = wrap(seen.get('command'), () => [...checkCommand(js['command'])]);
        if (seen.has('knownHosts')) entry.knownHosts = wrap(seen.get('knownHosts'), () => resolvePath(checkPath(js['knownHosts'], 'knownHosts'), dir));
        if (seen.has('trustOnFirstUse')) {
          const v = js['trustOnFirstUse'];
          if (typeof v !== 'boolean') return fail(at(seen.get('trustOnFirstUse')), `trustOnFirstUse of host "${name}" must be true or false`, 'write trustOnFirstUse: true or false');
          entry.trustOnFirstUse = v;
        }
        config.hosts.push(entry);
      }
    } else if (key === 'stores') {
      const stores = pair.value;
      if (stores === null || (isScalar(stores) && (stores.value === null || stores.value === undefined))) continue;
      if (!isMap(stores)) return fail(at(stores ?? pair.key), 'stores must be a mapping of NAME: {location: ...}', 'write one NAME: mapping per store under stores:, each with location: /PATH or HOST:/PATH');
      for (const sp of stores.items) {
        const name = wrap(sp.key, () => checkName(isScalar(sp.key) ? sp.key.value : sp.key));
        const body = sp.value;
        if (!isMap(body)) return fail(at(body ?? sp.key), `store "${name}" must be a mapping with location:`, 'give it location: /PATH or HOST:/PATH');
        const js = body.toJS(doc) as Record<string, unknown>;
        for (const f of body.items) {
          const k = isScalar(f.key) ? f.key.value : undefined;
          if (typeof k !== 'string' || !(STORE_KEYS as readonly string[]).includes(k)) {
            return fail(at(f.key), `unknown key ${JSON.stringify(String(k))} in store "${name}"`, `use only ${STORE_KEYS.join(', ')}`);
          }
        }
        const loc = js['location'];
        if (typeof loc !== 'string' || !/^(?:[a-z0-9][a-z0-9_.-]{0,62}:)?\//.test(loc)) {
          return fail(at(sp.key), `store "${name}" needs location: /PATH or HOST:/PATH`, 'write location: /srv/tsmigrate-store or location: host-c:/srv/tsmigrate-store');
        }
        const entry: StoreEntry = { name, location: loc, encryptKey: null };
        if (js['encryptKey'] !== undefined) entry.encryptKey = wrap(body, () => resolvePath(checkPath(js['encryptKey'], 'encryptKey'), dir));
        config.stores.push(entry);
      }
    } else if (key === 'trust') {
      const list = pair.value;
      if (list === null || (isScalar(list) && (list.value === null || list.value === undefined))) continue;
      const fix = 'write one public key line (tsmigrate key show on that host) per item under trust:, or use tsmigrate key trust';
      if (!isSeq(list)) return fail(at(list ?? pair.key), 'trust must be a list of public key lines', fix);
      if (list.items.length > MAX_TRUSTED) return fail(at(list), `trust lists ${list.items.length} keys, more than ${MAX_TRUSTED}`, 'remove keys no longer used');
      for (const item of list.items) {
        const v = isScalar(item) ? item.value : undefined;
        if (typeof v !== 'string') return fail(at(item), 'each item of trust must be a public key line', fix);
        try {
          config.trust.push(parsePublicKey(v));
        } catch (e) {
          if (e instanceof TsmError) return fail(at(item), e.message, fix);
          throw e;
        }
      }
    } else if (key === 'agent') {
      try {
        config.agent = parseAgentSettings(isScalar(pair.value) || pair.value === null ? (pair.value?.value ?? null) : (pair.value as YamlNode).toJSON());
      } catch (e) {
        return fail(at(pair.value ?? pair.key), (e as Error).message, 'see docs/ROLES.md for the agent: section');
      }
    } else {
      return fail(at(pair.key), `unknown key ${JSON.stringify(String(key))}`, `use only ${ROOT_KEYS.join(', ')}`);
    }
  }
  config.hosts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { doc, config };
}

/** Parses and validates config text (pure). Throws ECONFIG naming file:line. */
export function parseHostsConfig(text: string, file: string = DEFAULT_CONFIG): HostsConfig {
  return parseFile(text, path.resolve(file)).config;
}

async function readConfigText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    throw new TsmError('ECONFIG', `cannot read the hosts config ${file}: ${(e as Error).message}`, {
      fix: code === 'EACCES' ? 'run as root or fix its permissions' : 'check the path given with --config or TSMIGRATE_CONFIG',
      cause: e,
    });
  }
}

/** Loads the config; a missing file is an empty config. */
export async function loadHostsConfig(file: string = resolveConfigPath()): Promise<HostsConfig> {
  const abs = path.resolve(file);
  const text = await readConfigText(abs);
  return parseHostsConfig(text ?? '', abs);
}

export function getHost(cfg: HostsConfig, name: string): HostEntry {
  const h = cfg.hosts.find((x) => x.name === name);
  if (!h) {
    const known = cfg.hosts.map((x) => x.name);
    throw new TsmError('ENOENT_HOST', `no host "${name}" in ${cfg.file}`, {
      fix: known.length ? `use one of ${known.join(', ')}, or add it with tsmigrate host add ${name} ${URL_FORM}` : `add it with tsmigrate host add ${name} ${URL_FORM}`,
    });
  }
  return h;
}

/** The known_hosts files checked for a host; the first is where trust-on-first-use appends. */
export function knownHostsFilesFor(cfg: HostsConfig, host: HostEntry): string[] {
  return [host.knownHosts ?? cfg.knownHosts];
}

/**
 * Checks a private key file the way OpenSSH would before using it: a readable
 * regular file, not accessible by group or others when we own it, holding a
 * private key (an encrypted one only works through ssh-agent).
 */
export interface IdentityCheckOptions {
  /** error code to throw (default EINVAL_ARG) */
  code?: ErrorCode;
  /** how to name the file in messages (default "identity file") */
  who?: string;
  /** accept a passphrase-protected key (usable only through ssh-agent) */
  allowEncrypted?: boolean;
}

/**
 * Checks a private key file the way OpenSSH would before using it: a readable
 * regular file, not accessible by group or others when we own it, holding a
 * private key. Passphrase-protected keys are refused unless allowEncrypted
 * (they work only when ssh-agent holds them).
 */
export async function checkIdentityFile(file: string, opts: IdentityCheckOptions = {}): Promise<{ data: Buffer; encrypted: boolean }> {
  const code = opts.code ?? 'EINVAL_ARG';
  const who = opts.who ?? 'identity file';
  let st;
  try {
    st = await fs.stat(file);
    await fs.access(file, constants.R_OK);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    throw new TsmError(code, `${who} ${file} ${c === 'ENOENT' ? 'does not exist' : `cannot be read (${c ?? (e as Error).message})`}`, {
      fix: c === 'ENOENT' ? 'give the path of an existing private key, e.g. ~/.ssh/id_ed25519' : 'make it readable by this user',
      cause: e,
    });
  }
  if (!st.isFile()) throw new TsmError(code, `${who} ${file} is not a regular file`, { fix: 'give the path of a private key file' });
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid === uid && (st.mode & 0o077) !== 0) {
    throw new TsmError(code, `${who} ${file} is accessible by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}); refusing to use it`, {
      fix: `chmod 600 ${file}`,
    });
  }
  const data = await fs.readFile(file);
  const parsed = ssh2.utils.parseKey(data);
  if (parsed instanceof Error) {
    if (/encrypted|passphrase/i.test(parsed.message)) {
      if (opts.allowEncrypted) return { data, encrypted: true };
      throw new TsmError(code, `${who} ${file} is protected by a passphrase`, {
        fix: 'load it into ssh-agent (ssh-add) and set SSH_AUTH_SOCK, or use a key without a passphrase readable only by its owner',
      });
    }
    throw new TsmError(code, `${who} ${file} is not a private key ssh2 can read: ${parsed.message}`, { fix: 'give an OpenSSH or PEM private key, e.g. one made by ssh-keygen -t ed25519' });
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) {
    throw new TsmError(code, `${who} ${file} holds a public key, not a private key`, { fix: `give the private key file (${file.replace(/\.pub$/, '')}?)` });
  }
  return { data, encrypted: false };
}

export interface AddHostRequest {
  name: string;
  url: string;
  /** absolute, or relative to the current directory */
  identity?: string;
  command?: string[];
  knownHosts?: string;
  trustOnFirstUse?: boolean;
}

function lockDirFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.lock`);
}

async function editConfig<T>(file: string, fn: (doc: Document.Parsed, cfg: HostsConfig) => T): Promise<T> {
  const abs = path.resolve(file);
  try {
    await fs.mkdir(path.dirname(abs), { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new TsmError('ECONFIG', `cannot create the directory of the hosts config ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      fix: 'run as root, or use --config FILE (or TSMIGRATE_CONFIG) in a directory you can write',
      cause: e,
    });
  }
  return withLock(lockDirFor(abs), `the hosts config ${abs}`, async () => {
    const text = (await readConfigText(abs)) ?? '';
    const { doc, config } = parseFile(text, abs);
    const r = fn(doc, config);
    const out = doc.toString({ lineWidth: 0 });
    parseFile(out, abs); // what we write must load again
    try {
      await writeFileAtomic(abs, out, 0o600);
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'EACCES' || c === 'EPERM' || c === 'EROFS') {
        throw new TsmError('ECONFIG', `cannot write the hosts config ${abs}: ${c}`, { fix: 'run as root, or use --config FILE (or TSMIGRATE_CONFIG) for a file you can write', cause: e });
      }
      throw e;
    }
    return r;
  });
}

/** Adds a host (EEXIST_HOST when the name is taken). Paths are stored absolute. */
export async function addHost(file: string, req: AddHostRequest, opts: { warn?: (msg: string) => void } = {}): Promise<HostEntry> {
  const name = validateHostName(req.name);
  const u = parseHostUrl(req.url);
  const identity = req.identity !== undefined ? path.resolve(req.identity) : undefined;
  if (identity !== undefined) {
    const id = await checkIdentityFile(identity, { allowEncrypted: true });
    if (id.encrypted) opts.warn?.(`identity file ${identity} is protected by a passphrase: connections will work only while ssh-agent holds it`);
  }
  const command = req.command !== undefined ? [...req.command] : undefined;
  if (command !== undefined) {
    try {
      checkCommand(command);
    } catch (e) {
      if (e instanceof FieldError) throw new TsmError('EINVAL_ARG', e.message, { fix: e.fix });
      throw e;
    }
  }
  const knownHosts = req.knownHosts !== undefined ? path.resolve(req.knownHosts) : undefined;
  if (knownHosts !== undefined && (knownHosts.includes('\0') || req.knownHosts === '')) {
    throw new TsmError('EINVAL_ARG', 'invalid --known-hosts path', { fix: 'give a file path' });
  }
  await editConfig(file, (doc, cfg) => {
    if (cfg.hosts.some((h) => h.name === name)) {
      throw new TsmError('EEXIST_HOST', `host "${name}" is already in ${cfg.file}`, { fix: `remove it first (tsmigrate host rm ${name}) or choose another name` });
    }
    const body: Record<string, unknown> = { url: u.url };
    if (identity !== undefined) body['identity'] = identity;
    if (command !== undefined) body['command'] = command;
    if (knownHosts !== undefined) body['knownHosts'] = knownHosts;
    if (req.trustOnFirstUse) body['trustOnFirstUse'] = true;
    const node = doc.createNode(body);
    const cmdNode = node.get('command', true);
    if (isSeq(cmdNode)) cmdNode.flow = true;
    if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
    if (!isMap(doc.get('hosts'))) doc.set('hosts', doc.createNode({}));
    doc.setIn(['hosts', name], node);
  });
  return getHost(await loadHostsConfig(file), name);
}

/** Removes a host (ENOENT_HOST when absent); returns what it was. */
export async function removeHost(file: string, name: string): Promise<HostEntry> {
  return editConfig(file, (doc, cfg) => {
    const h = getHost(cfg, name);
    doc.deleteIn(['hosts', name]);
    return h;
  });
}

/** Trust a public key (a no-op when it is trusted already); returns it. */
export async function trustKey(file: string, line: string): Promise<{ key: PublicKey; added: boolean }> {
  const key = parsePublicKey(line);
  return editConfig(file, (doc, cfg) => {
    if (cfg.trust.some((k) => k.fingerprint === key.fingerprint)) return { key, added: false };
    if (cfg.trust.length >= MAX_TRUSTED) throw new TsmError('ECONFIG', `${cfg.file} trusts ${MAX_TRUSTED} keys already`, { fix: 'remove keys no longer used (tsmigrate key untrust)' });
    if (!isMap(doc.contents)) doc.contents = doc.createNode({}) as unknown as typeof doc.contents;
    const seq = doc.get('trust');
    if (isSeq(seq)) seq.add(doc.createNode(line.trim()));
    else doc.set('trust', doc.createNode([line.trim()]));
    return { key, added: true };
  });
}

/** Stop trusting the key with this fingerprint (ENOENT_HOST-like EINVAL_ARG when it is not trusted). */
export async function untrustKey(file: string, fingerprint: string): Promise<PublicKey> {
  return editConfig(file, (doc, cfg) => {
    const i = cfg.trust.findIndex((k) => k.fingerprint === fingerprint);
    if (i < 0) throw new TsmError('EINVAL_ARG', `${cfg.file} does not trust ${fingerprint}`, { fix: 'list the trusted keys with tsmigrate key ls' });
    doc.deleteIn(['trust', i]);
    return cfg.trust[i]!;
  });
}
