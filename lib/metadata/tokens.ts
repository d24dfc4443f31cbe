/**
 * Where a metadata server's tokens come from: access tokens per scope set and ID
 * tokens per audience, each kind from the token sources of lib/google, so caching,
 * refresh ahead of expiry and one signing for concurrent requests are theirs.
 */
import type { Signer } from '../crypt/signer.js';
import type { ExpiringToken } from '../google/cached-token.js';
import { makeTokenSource } from '../google/token-sources.js';
import type { NewKeyRate } from './new-key-rate.js';
import { SourcesByKey } from './sources-by-key.js';

export interface MetadataTokens {
  /** An access token for `scopes` (sorted, unique); undefined for a new scope set the rate refuses. */
  accessToken(scopes: readonly string[]): Promise<ExpiringToken | undefined>;
  /** Whether idToken can answer at all (federation without impersonation cannot). */
  readonly idTokens: boolean;
  /** A Google-signed ID token whose aud is `audience`; undefined for a new audience the rate refuses. */
  idToken(audience: string): Promise<ExpiringToken | undefined>;
  /** Releases what the tokens were made with, when it was opened for them. */
  close(): Promise<void>;
}

/** How many scope sets and audiences keep a source each, beyond the default scopes. */
export const KEPT_SOURCES = 32;

/** The key of a scope set in a SourcesByKey, and back. */
export const scopeKey = (scopes: readonly string[]) => scopes.join(' ');
export const keyScopes = (key: string) => key.split(' ');

export interface SignerTokensOptions {
  signer: Signer;
  email: string;
  /** oauth2: the JWT-bearer exchange; jwt-access: a self-signed JWT with a scope claim. */
  mode: 'oauth2' | 'jwt-access';
  /** The scope set most requests ask for: its source is never dropped. */
  defaultScopes: readonly string[];
  /** How fast new scope sets and audiences may get a source; default unlimited. */
  newKeys?: NewKeyRate;
  tokenUrl?: string;
  universeDomain?: string;
}

/**
 * Tokens signed by a service account's key: access tokens as `mode` says; ID tokens
 * always from the JWT-bearer exchange (only Google's signature makes one a service accepts).
 */
export function signerTokens(options: SignerTokensOptions): MetadataTokens {
  const { signer, email, mode, tokenUrl, universeDomain, newKeys } = options;
  const common = {
    signer: async () => signer,
    email,
    ...(tokenUrl !== undefined && { tokenUrl }),
    ...(universeDomain !== undefined && { universeDomain }),
  };
  const access = new SourcesByKey(
    (key) => makeTokenSource({ ...common, mode, scopes: keyScopes(key) }),
    KEPT_SOURCES,
    [scopeKey(options.defaultScopes)],
    newKeys,
  );
  const identity = new SourcesByKey(
    (audience) => makeTokenSource({ ...common, mode: 'id-token', targetAudience: audience }),
    KEPT_SOURCES,
    [],
    newKeys,
  );
  return {
    accessToken: async (scopes) => access.get(scopeKey(scopes))?.token(undefined),
    idTokens: true,
    idToken: async (audience) => identity.get(audience)?.token(undefined),
    close: async () => {},
  };
}
