/**
 * Where Bearer tokens for Google come from, one mode each, and none needs
 * google-auth-library (TpmAuthClient holds a source; the CLI and the metadata server
 * use them without that library):
 * - 'jwt-access': a self-signed JWT is the token (AIP-4111), its aud the service's root
 *   URL, or a `scope` claim when scopes are set or no audience can be known.
 * - 'oauth2': the JWT-bearer grant (RFC 7523) exchanges a self-signed assertion for an
 *   access token for the scopes.
 * - 'id-token': the same grant with `target_audience` returns a Google-signed ID token,
 *   for Cloud Run, IAP and other services that verify one.
 * Tokens are kept in a TokenCache (lib/jwt/token-cache.ts): its rules are theirs.
 */
import type { Agent } from 'node:https';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument, messageWithCauses, ownError, TpmJwtError } from '../errors.js';
import { decode } from '../jwt/decode.js';
import { mintToken } from '../jwt/encode.js';
import { DEFAULT_LIFETIME_SECONDS } from '../jwt/signing-credentials.js';
import { TokenCache, type ExpiringToken } from '../jwt/token-cache.js';
import { rememberLast } from '../remember-last.js';
import { mtlsEndpoint } from './mtls-endpoint.js';

/** The ways TpmAuthClient and the CLI turn a TPM key into a Bearer token. */
export const MODES = Object.freeze(['jwt-access', 'oauth2', 'id-token'] as const);
export type TpmAuthMode = (typeof MODES)[number];

export const DEFAULT_UNIVERSE_DOMAIN = 'googleapis.com';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

const ASSERTION_LIFETIME_SECONDS = 3600;
const DEFAULT_EXPIRES_IN_SECONDS = 3600;
/** jwt-access: how many audiences (services) keep a token each, as OnDemandCredentials' default. */
const AUDIENCES_KEPT = 10;

/** A request's URL, or undefined when the caller has none (the service path decides). */
type RequestUrl = string | URL | undefined;

export interface TokenSource {
  /**
   * The token for a request to `url` when one is cached and fresh, else undefined.
   * Synchronous and never signs: it is the path nearly every request takes.
   */
  cached(url: RequestUrl): string | undefined;
  /** The token for a request to `url`, with its expiry; signs or asks a token server when needed. */
  token(url: RequestUrl): Promise<ExpiringToken>;
}

/** What a source is made from; everything but the signer and email has a default. */
interface TokenSourceOptions {
  mode?: TpmAuthMode;
  /** The signer, opened on first use; rejects if it cannot be opened (a later call tries again). */
  signer: () => Promise<Signer>;
  /** The service account: issuer and subject of every token. */
  email: string;
  scopes?: readonly string[];
  /** jwt-access: a fixed audience instead of one per service. */
  audience?: string;
  /** id-token: the audience of the ID token. */
  targetAudience?: string;
  /** Default https://oauth2.<universeDomain>/token. */
  tokenUrl?: string;
  /** How long to wait for the token endpoint, ms; default 30000. */
  tokenTimeoutMs?: number;
  /** jwt-access: lifetime of the tokens, seconds; default 3600. */
  tokenLifetime?: number;
  universeDomain?: string;
  /** The client library's service host: google-gax sets it after the client is made. */
  servicePath?: () => string | undefined;
  /**
   * oauth2 and id-token: the agent (mtls.ts) that takes the exchange to the token
   * endpoint's mTLS host; the assertion's audience stays the token URL.
   */
  mtlsAgent?: () => Promise<Agent>;
}

type Optional = 'scopes' | 'audience' | 'targetAudience' | 'mtlsAgent';
type Context = Required<Omit<TokenSourceOptions, Optional>> & Pick<TokenSourceOptions, Optional>;

export function defaultTokenUrl(universeDomain: string): string {
  return `https://oauth2.${universeDomain}/token`;
}

/** The options with their defaults; throws ERR_INVALID_ARGUMENT when the mode lacks what it needs. */
function withDefaults(options: TokenSourceOptions): Context {
  const mode = options.mode ?? 'jwt-access';
  if (!MODES.includes(mode)) throw invalidArgument(`mode must be one of ${MODES.join(', ')}`);
  if (mode === 'id-token' && typeof options.targetAudience !== 'string') {
    throw invalidArgument('id-token mode needs targetAudience');
  }
  const lifetime = options.tokenLifetime;
  if (mode === 'jwt-access' && lifetime !== undefined && !(Number.isInteger(lifetime) && lifetime > 0)) {
    throw invalidArgument('tokenLifetime must be a positive integer');
  }
  const universeDomain = options.universeDomain ?? DEFAULT_UNIVERSE_DOMAIN;
  return {
    ...options,
    mode,
    tokenUrl: options.tokenUrl ?? defaultTokenUrl(universeDomain),
    tokenTimeoutMs: options.tokenTimeoutMs ?? 30_000,
    tokenLifetime: lifetime ?? DEFAULT_LIFETIME_SECONDS,
    universeDomain,
    servicePath: options.servicePath ?? (() => undefined),
  };
}

/** The token source for `options.mode` (default jwt-access). Throws ERR_INVALID_ARGUMENT. */
export function makeTokenSource(options: TokenSourceOptions): TokenSource {
  const context = withDefaults(options);
  if (context.mode !== 'jwt-access') {
    // The URL of a request plays no part: one token serves them all.
    const cache = new TokenCache(() => exchangeToken(context), { maxSize: 1, refreshAhead: true });
    return { cached: () => cache.peek('')?.token, token: () => cache.get('') };
  }
  // One token per audience; '' (no URL's audience) for the scope-claim token.
  const cache = new TokenCache((audience) => selfSignedToken(context, audience || undefined), {
    maxSize: AUDIENCES_KEPT,
    refreshAhead: true,
  });
  const urlAudience = rememberLast((url: string | URL) => serviceAudience(url, undefined, context.universeDomain));
  const keyFor = (url: RequestUrl): string => {
    const { scopes, audience, universeDomain } = context;
    if (scopes !== undefined) return '';
    if (audience !== undefined) return audience;
    // Without a URL the library's service path decides; it is cheap to read.
    if (url === undefined || url === '') return serviceAudience(undefined, context.servicePath(), universeDomain) ?? '';
    return urlAudience(url) ?? '';
  };
  return { cached: (url) => cache.peek(keyFor(url))?.token, token: (url) => cache.get(keyFor(url)) };
}

/**
 * A new token as `options.mode` makes one for no request in particular (jwt-access: the
 * fixed audience, else the scope claim), never cached: for callers that keep tokens
 * under keys of their own, as the metadata server does. Throws ERR_INVALID_ARGUMENT.
 */
export function newToken(options: TokenSourceOptions): Promise<ExpiringToken> {
  const context = withDefaults(options);
  return context.mode === 'jwt-access' ? selfSignedToken(context, context.audience) : exchangeToken(context);
}

/** The `scope` claim: the given scopes space-separated, or cloud-platform when none are given. */
function scopeClaim(scopes: readonly string[] | undefined): string {
  return (scopes ?? [CLOUD_PLATFORM_SCOPE]).join(' ');
}

/** A self-signed JWT for `audience`, or with a `scope` claim when there is none. */
async function selfSignedToken(context: Context, audience: string | undefined): Promise<ExpiringToken> {
  return mintToken(await context.signer(), {
    issuer: context.email,
    subject: context.email,
    audience,
    additionalClaims: audience === undefined ? { scope: scopeClaim(context.scopes) } : {},
    tokenLifetime: context.tokenLifetime,
  });
}

/**
 * The audience of a self-signed JWT access token (AIP-4111): the service's root URL,
 * https://SERVICE.googleapis.com/, taken from the request URL or the client library's
 * service path; undefined when none can be known (use a scope).
 */
function serviceAudience(
  url: string | URL | undefined,
  servicePath: string | undefined,
  universeDomain: string,
): string | undefined {
  if (url !== undefined && url !== '') {
    let parsed: URL;
    try {
      parsed = new URL(String(url));
    } catch {
      return undefined;
    }
    if (parsed.hostname.endsWith(`.${universeDomain}`)) {
      // mTLS endpoints (SERVICE.mtls.googleapis.com) share the service's audience.
      return `https://${parsed.hostname.replace(`.mtls.${universeDomain}`, `.${universeDomain}`)}/`;
    }
    return `${parsed.protocol}//${parsed.host}/`;
  }
  if (servicePath) return `https://${servicePath.replace(/\/+$/, '')}/`;
  return undefined;
}

/** What the oauth2 and id-token modes ask the token endpoint for, and how each reads the answer. */
const GRANTS = {
  oauth2: {
    claims: (context: Context) => ({ scope: scopeClaim(context.scopes) }),
    field: 'access_token',
    async expiry(_context: Context, _token: string, answer: Record<string, unknown>): Promise<Date> {
      // expires_in is optional in RFC 6749; Google always sends it.
      const expiresIn = Number(answer['expires_in'] ?? DEFAULT_EXPIRES_IN_SECONDS);
      return new Date(Date.now() + (Number.isFinite(expiresIn) ? expiresIn : DEFAULT_EXPIRES_IN_SECONDS) * 1000);
    },
  },
  'id-token': {
    claims: (context: Context) => ({ target_audience: context.targetAudience }),
    field: 'id_token',
    async expiry(context: Context, token: string): Promise<Date> {
      const expiry = await jwtExpiry(token);
      if (!expiry) throw exchangeFailure(context.tokenUrl, 'the id_token is not a JWT with an exp');
      return expiry;
    },
  },
} as const;

/** A token from the JWT-bearer grant at context.tokenUrl, for the oauth2 or id-token mode. */
async function exchangeToken(context: Context): Promise<ExpiringToken> {
  const grant = GRANTS[context.mode as keyof typeof GRANTS];
  const { email, tokenUrl, tokenTimeoutMs } = context;
  const { token: assertion } = await mintToken(await context.signer(), {
    issuer: email,
    subject: email,
    audience: tokenUrl,
    additionalClaims: grant.claims(context),
    tokenLifetime: ASSERTION_LIFETIME_SECONDS,
  });
  const answer = await exchangeAssertion(tokenUrl, assertion, tokenTimeoutMs, context);
  const token = answer[grant.field];
  if (typeof token !== 'string' || token === '') throw exchangeFailure(tokenUrl, `the answer has no ${grant.field}`);
  return { token, expiry: await grant.expiry(context, token, answer) };
}

/** The ERR_TOKEN_EXCHANGE error for `tokenUrl`, its message prefixed with the endpoint. */
function exchangeFailure(tokenUrl: string, message: string, cause?: unknown): TpmJwtError {
  return new TpmJwtError('ERR_TOKEN_EXCHANGE', `token endpoint ${tokenUrl}: ${message}`, { cause });
}

/**
 * POSTs the assertion (through the mTLS agent to the endpoint's mTLS host when there is
 * one) and returns the endpoint's JSON. Throws ERR_TOKEN_EXCHANGE with the server's own
 * error text for an error status, on timeout and for a body that is not a JSON object.
 */
async function exchangeAssertion(
  tokenUrl: string,
  assertion: string,
  timeoutMs: number,
  context: Pick<Context, 'mtlsAgent' | 'universeDomain'>,
): Promise<Record<string, unknown>> {
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  const body = new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString();
  let status: number;
  let text: string;
  try {
    if (context.mtlsAgent) {
      const url = new URL(mtlsEndpoint(tokenUrl, context.universeDomain));
      const { post } = await import('../post.js');
      ({ status, text } = await post(url, body, { headers, agent: await context.mtlsAgent(), timeoutMs }));
    } else {
      const response = await fetch(tokenUrl, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
      ({ status } = response);
      text = await response.text();
    }
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : messageWithCauses(err);
    throw ownError(err) ?? exchangeFailure(tokenUrl, reason, err);
  }
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (status < 200 || status > 299) {
    const error = answer as { error?: unknown; error_description?: unknown } | undefined;
    const detail =
      typeof error?.error === 'string'
        ? [error.error, error.error_description].filter((x) => typeof x === 'string').join(': ')
        : text.slice(0, 200);
    throw exchangeFailure(tokenUrl, `HTTP ${status}${detail ? ` ${detail}` : ''}`);
  }
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
    throw exchangeFailure(tokenUrl, `answered ${status} without a JSON object`);
  }
  return answer as Record<string, unknown>;
}

/** When an ID token expires (Google sends no expires_in with one): its exp; undefined when it has none. */
export async function jwtExpiry(token: unknown): Promise<Date | undefined> {
  if (typeof token !== 'string') return undefined;
  try {
    const { exp } = await decode(token, { verify: false });
    return typeof exp === 'number' && Number.isFinite(exp) ? new Date(exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}
