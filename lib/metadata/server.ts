/**
 * A GCE-compatible metadata server whose tokens come from a TPM key, so every process
 * and language on the device gets hardware-bound credentials through Application
 * Default Credentials (GCE_METADATA_HOST, GCE_METADATA_IP, GCE_METADATA_ROOT). It
 * listens on loopback (elsewhere only when told so) or a unix socket, answers as
 * handler.ts says, and on close stops accepting, lets requests in flight finish, then
 * releases what it opened.
 */
import { createServer, type Server } from 'node:http';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import type { MtlsOptions } from '../google/mtls.js';
import { CLOUD_PLATFORM_SCOPE, DEFAULT_UNIVERSE_DOMAIN } from '../google/token-sources.js';
import { isLoopback } from '../loopback.js';
import { allowedHosts } from './guard.js';
import { handle, type HandlerContext, type RequestLog } from './handler.js';
import { eventLine, requestLine } from './log-line.js';
import { policyGate } from './policy-gate.js';
import { NewKeyRate } from './new-key-rate.js';
import { signerTokens, type MetadataTokens } from './tokens.js';
import { metadataTree } from './tree.js';

/** Where tokens come from: a service account's key (oauth2, jwt-access), or federation (wif). */
export type MetadataTokenOptions =
  | {
      mode?: 'oauth2' | 'jwt-access';
      signer: Signer;
      /** The service account the key belongs to. */
      email: string;
      /** oauth2's token endpoint; default Google's. */
      tokenUrl?: string;
      /** Certificate-based access: the exchanges at the token endpoint's mTLS host, with the key's certificate. */
      mtls?: MtlsOptions;
    }
  | {
      mode: 'wif';
      /** A credential configuration for the TPM key, either kind wif-config writes (JWKS or X.509). */
      credentialConfiguration: string;
      /** The email to report; default the impersonated service account. */
      email?: string;
      /** X.509: PEM roots to check Google's servers against instead of the system's. */
      ca?: string;
    };

export type MetadataServerOptions = MetadataTokenOptions & {
  /** The scopes reported, and those of a token request that names none; default cloud-platform. */
  scopes?: readonly string[];
  projectId?: string;
  numericProjectId?: string;
  instanceId?: string;
  zone?: string;
  universeDomain?: string;
  /** Default 127.0.0.1; anything but loopback is refused unless allowRemote is set. */
  host?: string;
  /**
   * Listen on a host that is not loopback (0.0.0.0, a LAN address, a name): every
   * machine that can reach it gets this account's tokens. Default false.
   */
  allowRemote?: boolean;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** A unix socket path instead of TCP; an existing file is never replaced, a stale socket is. */
  socket?: string;
  /** The socket's file mode; default 0o600. */
  socketMode?: number;
  /** Receives one JSON line per request and per event; default none. */
  log?: (line: string) => void;
  /**
   * Runs before any token is served and throws when the key may no longer sign. Default:
   * for a TpmSigner whose key is bound to PCRs, the check that its policy still holds.
   */
  beforeMint?: () => Promise<void>;
  /** How long close() waits for requests in flight, ms; default 10,000. */
  drainTimeoutMs?: number;
  /**
   * How fast clients may ask for scope sets and audiences the server holds no token
   * source for (each costs a TPM signing and an exchange): a token bucket of `burst`,
   * refilled at `perMinute` (0: never). Past it such requests are answered 429; those
   * for scope sets and audiences already kept never are. Default 10 a minute, burst 20.
   */
  newScopesAndAudiences?: { perMinute?: number; burst?: number };
};

export interface MetadataServer {
  /** `http://127.0.0.1:8080`, or `unix:/run/tpm-jwt/metadata.sock`. */
  readonly url: string;
  /** What GCE_METADATA_HOST and GCE_METADATA_IP take: `127.0.0.1:8080` (TCP only). */
  readonly host: string | undefined;
  /** Stops accepting, waits for requests in flight, releases what the server opened. */
  close(): Promise<void>;
}

/**
 * Starts a metadata server. Throws ERR_INVALID_ARGUMENT for options it cannot serve
 * with or an address it cannot listen on; for wif, what opening the configuration throws.
 */
export async function startMetadataServer(options: MetadataServerOptions): Promise<MetadataServer> {
  checkValues(options);
  const rate = newKeyRate(options);
  // Sorted and unique, as parsed request scopes are: the same set is the same token.
  const scopes = [...new Set(options.scopes ?? [CLOUD_PLATFORM_SCOPE])].sort();
  if (scopes.length === 0) throw invalidArgument('scopes must name at least one scope');
  const opened = await openTokens(options, scopes, rate.limit);
  try {
    return await listen(options, opened, scopes, rate.retryAfterSeconds);
  } catch (err) {
    await opened.tokens.close();
    throw err;
  }
}

/** GCE writes these ids as JSON numbers: anything but digits would break every client's parse. */
function checkValues(options: MetadataServerOptions): void {
  for (const name of ['numericProjectId', 'instanceId'] as const) {
    const value = options[name];
    if (value !== undefined && !/^[0-9]{1,30}$/.test(value)) throw invalidArgument(`${name} must be digits`);
  }
  const mode = options.socketMode;
  if (mode !== undefined && !(Number.isInteger(mode) && mode >= 0 && mode <= 0o777)) {
    throw invalidArgument('socketMode must be a file mode from 0 to 0o777');
  }
  const host = options.host ?? '127.0.0.1';
  if (options.socket === undefined && options.allowRemote !== true && !isLoopback(host)) {
    throw invalidArgument(
      `host ${host} is not loopback: every machine that reaches it would get this account's tokens; ` +
        'set allowRemote: true if that is meant',
    );
  }
}

/** The default pace of new scope sets and audiences: a few workloads starting at once, then slow. */
const NEW_KEYS_PER_MINUTE = 10;
const NEW_KEYS_BURST = 20;

/** The bucket newScopesAndAudiences describes, and the Retry-After of its 429s. */
function newKeyRate(options: MetadataServerOptions): { limit: NewKeyRate; retryAfterSeconds: number | undefined } {
  const { perMinute = NEW_KEYS_PER_MINUTE, burst = NEW_KEYS_BURST } = options.newScopesAndAudiences ?? {};
  if (typeof perMinute !== 'number' || !Number.isFinite(perMinute) || perMinute < 0) {
    throw invalidArgument('newScopesAndAudiences.perMinute must be a number >= 0');
  }
  if (!Number.isInteger(burst) || burst < 1)
    throw invalidArgument('newScopesAndAudiences.burst must be an integer >= 1');
  // An empty bucket has its next new key within one refill interval.
  const retryAfterSeconds = perMinute > 0 ? Math.ceil(60 / perMinute) : undefined;
  return { limit: new NewKeyRate(perMinute, burst), retryAfterSeconds };
}

interface Opened {
  tokens: MetadataTokens;
  email: string;
  beforeMint: (() => Promise<void>) | undefined;
}

async function openTokens(
  options: MetadataServerOptions,
  scopes: readonly string[],
  newKeys: NewKeyRate,
): Promise<Opened> {
  const { universeDomain } = options;
  if (options.mode === 'wif') {
    let wifTokens: typeof import('./wif-tokens.js').wifTokens;
    try {
      ({ wifTokens } = await import('./wif-tokens.js'));
    } catch (err) {
      throw new TpmJwtError(
        'ERR_INVALID_ARGUMENT',
        'wif mode needs google-auth-library: npm install google-auth-library',
        {
          cause: err,
        },
      );
    }
    const tokens = await wifTokens(
      options.credentialConfiguration,
      scopes,
      newKeys,
      options.ca !== undefined ? { ca: options.ca } : {},
    );
    const email = options.email ?? tokens.serviceAccount;
    if (email === undefined) {
      await tokens.close();
      throw invalidArgument('the configuration impersonates no service account: give the email to report');
    }
    return { tokens, email, beforeMint: options.beforeMint ?? policyGate(tokens.identity.signer) };
  }
  const { signer, email, tokenUrl, mode = 'oauth2', mtls } = options;
  if (mode !== 'oauth2' && mode !== 'jwt-access') throw invalidArgument('mode must be oauth2, jwt-access or wif');
  const tokens = signerTokens({
    signer,
    email,
    mode,
    defaultScopes: scopes,
    newKeys,
    ...(tokenUrl !== undefined && { tokenUrl }),
    ...(universeDomain !== undefined && { universeDomain }),
    ...(mtls !== undefined && { mtls }),
  });
  return { tokens, email, beforeMint: options.beforeMint ?? policyGate(signer) };
}

/** Enough for any device's processes; past it the kernel queues, the server stays up. */
const MAX_CONNECTIONS = 4096;

async function listen(
  options: MetadataServerOptions,
  opened: Opened,
  scopes: string[],
  retryAfterSeconds: number | undefined,
): Promise<MetadataServer> {
  const { tokens, email, beforeMint } = opened;
  const log = options.log ?? (() => {});
  const event = (fields: object) => log(eventLine(fields));
  const host = options.socket === undefined ? (options.host ?? '127.0.0.1') : undefined;
  let draining = false;
  const context: HandlerContext = {
    tree: metadataTree({
      email,
      scopes: options.scopes ?? scopes,
      universeDomain: options.universeDomain ?? DEFAULT_UNIVERSE_DOMAIN,
      ...(options.projectId !== undefined && { projectId: options.projectId }),
      ...(options.numericProjectId !== undefined && { numericProjectId: options.numericProjectId }),
      ...(options.instanceId !== undefined && { instanceId: options.instanceId }),
      ...(options.zone !== undefined && { zone: options.zone }),
    }),
    tokens,
    hosts: allowedHosts(host),
    scopes,
    retryAfterSeconds,
    beforeMint,
    closing: () => draining,
    log: (entry: RequestLog) => log(requestLine(entry)),
  };
  // Only answers that wait (a signing, a PCR check) are ever in flight: the rest are written at once.
  const inFlight = new Set<Promise<void>>();
  const server = createServer((req, res) => {
    const waiting = handle(context, req, res);
    if (waiting === undefined) return;
    const done = waiting.finally(() => inFlight.delete(done));
    inFlight.add(done);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxConnections = MAX_CONNECTIONS;
  server.on('clientError', (_err, socket) => socket.destroy());

  let url: string;
  let hostPort: string | undefined;
  if (options.socket !== undefined) {
    const socket = options.socket;
    await clearStaleSocket(socket);
    await listening(server, () => {
      // The socket is created with the umask's mode: keep it private until chmod.
      const umask = process.umask(0o177);
      try {
        server.listen(socket);
      } finally {
        process.umask(umask);
      }
    });
    try {
      await chmod(socket, options.socketMode ?? 0o600);
    } catch (err) {
      await new Promise((resolve) => server.close(resolve));
      throw invalidArgument(`cannot set the mode of ${socket}: ${(err as Error).message}`);
    }
    url = `unix:${socket}`;
  } else {
    await listening(server, () => server.listen(options.port ?? 8080, host));
    const { port } = server.address() as AddressInfo;
    hostPort = `${host!.includes(':') ? `[${host}]` : host}:${port}`;
    url = `http://${hostPort}`;
  }
  // Past start-up an error (accept failing for want of descriptors) is logged, never thrown.
  server.on('error', (err) => event({ event: 'error', error: err.message }));
  event({ event: 'listening', url, email });

  let closing: Promise<void> | undefined;
  return {
    url,
    host: hostPort,
    close() {
      closing ??= (async () => {
        draining = true;
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        // Requests keep arriving on busy keep-alive connections until their answer
        // (now with Connection: close) ends them: wait for all of them, not a snapshot.
        const deadline = Date.now() + (options.drainTimeoutMs ?? 10_000);
        while (inFlight.size > 0 && Date.now() < deadline) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            Promise.allSettled([...inFlight]),
            new Promise((resolve) => (timer = setTimeout(resolve, deadline - Date.now()))),
          ]);
          clearTimeout(timer);
        }
        server.closeAllConnections();
        await stopped;
        await tokens.close();
        event({ event: 'closed' });
      })();
      return closing;
    },
  };
}

/** Resolves once `server` listens; ERR_INVALID_ARGUMENT when it cannot. */
function listening(server: Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error) => reject(invalidArgument(`cannot listen: ${err.message}`));
    server.once('error', failed);
    server.once('listening', () => {
      server.off('error', failed);
      resolve();
    });
    start();
  });
}

/**
 * Removes a socket file that nothing listens on (connecting is refused); refuses
 * anything else at `path`: a file, or a socket someone answers on or we may not reach.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch {
    return;
  }
  if (!stats.isSocket()) throw invalidArgument(`${path} exists and is not a socket: not replaced`);
  const probe = await new Promise<string>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => (socket.destroy(), resolve('live')));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  if (probe !== 'ECONNREFUSED') {
    throw invalidArgument(
      `${path}: ${probe === 'live' ? 'another server is listening on it' : `cannot probe it (${probe})`}`,
    );
  }
  try {
    await unlink(path);
  } catch (err) {
    throw invalidArgument(`cannot remove the stale socket ${path}: ${(err as Error).message}`);
  }
}
