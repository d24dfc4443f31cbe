/**
 * Where a mode's Bearer tokens come from. TpmAuthClient holds one TokenSource for its
 * mode; anything else that serves tokens (a metadata server) can hold the same sources.
 */
import type { Signer } from '../crypt/signer.js';
import type { ExpiringToken } from './cached-token.js';

/** A request's URL, or undefined when the caller has none (the service path decides). */
export type RequestUrl = string | URL | undefined;

export interface TokenSource {
  /**
   * The token for a request to `url` when one is cached and fresh, else undefined.
   * Synchronous and never signs: it is the path nearly every request takes.
   */
  cached(url: RequestUrl): string | undefined;
  /** The token for a request to `url`, with its expiry; signs or asks a token server when needed. */
  token(url: RequestUrl): Promise<ExpiringToken>;
}

/** What every source may need, fixed when the client is made except where a getter says otherwise. */
export interface TokenSourceContext {
  /** The service account: issuer and subject of every token. */
  readonly email: string;
  readonly scopes: readonly string[] | undefined;
  /** A fixed audience for self-signed tokens. */
  readonly audience: string | undefined;
  readonly targetAudience: string | undefined;
  readonly tokenUrl: string;
  /** How long to wait for the token endpoint, ms. */
  readonly tokenTimeoutMs: number;
  /** Lifetime of self-signed tokens, seconds; undefined for the default. */
  readonly tokenLifetime: number | undefined;
  readonly universeDomain: string;
  /** The signer, opened on first use; rejects if it cannot be opened (a later call tries again). */
  signer(): Promise<Signer>;
  /** The client library's service host: google-gax sets it after the client is made. */
  servicePath(): string | undefined;
}

/** Makes a mode's source; throws ERR_INVALID_ARGUMENT when the context lacks what the mode needs. */
export type TokenSourceFactory = (context: TokenSourceContext) => TokenSource;
