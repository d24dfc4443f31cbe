/**
 * Where a metadata server's tokens come from: access tokens per scope set and ID
 * tokens per audience, each kind kept in a TokenCache (caching, refresh ahead of
 * expiry and one signing for concurrent requests are its rules), bounded because
 * clients choose the keys, the default scope set pinned so that no client can make
 * the common request sign again, and new keys taken on at the pace of a NewKeyRate.
 */
import type { Agent } from 'node:https';

import type { Signer } from '../crypt/signer.js';
import { mtlsAgent, type MtlsOptions } from '../google/mtls.js';
import { newToken } from '../google/token-sources.js';
import { TokenCache, type ExpiringToken } from '../jwt/token-cache.js';
import { tokenAtRate, type NewKeyRate } from './new-key-rate.js';

export interface MetadataTokens {
  /** An access token for `scopes` (sorted, unique); undefined for a new scope set the rate refuses. */
  accessToken(scopes: readonly string[]): Promise<ExpiringToken | undefined>;
  /** The fresh access token kept for `scopes`, or undefined; never fetches. The path nearly every request takes. */
  keptAccessToken(scopes: readonly string[]): ExpiringToken | undefined;
  /** Whether idToken can answer at all (federation without impersonation cannot). */
  readonly idTokens: boolean;
  /** A Google-signed ID token whose aud is `audience`; undefined for a new audience the rate refuses. */
  idToken(audience: string): Promise<ExpiringToken | undefined>;
  /** Releases what the tokens were made with, when it was opened for them. */
  close(): Promise<void>;
}

/** How many scope sets and audiences keep a token each, beyond the default scopes. */
export const KEPT_KEYS = 32;

let lastScopes: { scopes: readonly string[]; key: string } = { scopes: [], key: '' };

/**
 * The key of a scope set in a TokenCache. Most requests name no scopes and so pass the
 * server's one default array: its key is not joined (nor hashed by the Map) again.
 */
export function scopeKey(scopes: readonly string[]): string {
  if (scopes !== lastScopes.scopes) lastScopes = { scopes, key: scopes.join(' ') };
  return lastScopes.key;
}

/** A TokenCache key's scope set. */
export const keyScopes = (key: string) => key.split(' ');

interface SignerTokensOptions {
  signer: Signer;
  email: string;
  /** oauth2: the JWT-bearer exchange; jwt-access: a self-signed JWT with a scope claim. */
  mode: 'oauth2' | 'jwt-access';
  /** The scope set most requests ask for: its token is never dropped. */
  defaultScopes: readonly string[];
  /** How fast new scope sets and audiences may get a token; default unlimited. */
  newKeys?: NewKeyRate;
  tokenUrl?: string;
  universeDomain?: string;
  /** The exchanges (oauth2 tokens, ID tokens) over mutual TLS with this certificate for the key. */
  mtls?: MtlsOptions;
}

/**
 * Tokens signed by a service account's key: access tokens as `mode` says; ID tokens
 * always from the JWT-bearer exchange (only Google's signature makes one a service accepts).
 */
export function signerTokens(options: SignerTokensOptions): MetadataTokens {
  const { signer, email, mode, tokenUrl, universeDomain, newKeys, mtls } = options;
  // One agent for every exchange: its kept-alive connection signs once.
  let agent: Agent | undefined;
  const common = {
    signer: async () => signer,
    email,
    ...(tokenUrl !== undefined && { tokenUrl }),
    ...(universeDomain !== undefined && { universeDomain }),
    ...(mtls !== undefined && { mtlsAgent: async () => (agent ??= mtlsAgent(signer, mtls)) }),
  };
  const access = new TokenCache((key: string) => newToken({ ...common, mode, scopes: keyScopes(key) }), {
    maxSize: KEPT_KEYS,
    pinned: [scopeKey(options.defaultScopes)],
    refreshAhead: true,
  });
  const identity = new TokenCache(
    (audience: string) => newToken({ ...common, mode: 'id-token', targetAudience: audience }),
    { maxSize: KEPT_KEYS, refreshAhead: true },
  );
  return {
    accessToken: async (scopes) => tokenAtRate(access, scopeKey(scopes), newKeys),
    keptAccessToken: (scopes) => access.peek(scopeKey(scopes)),
    idTokens: true,
    idToken: async (audience) => tokenAtRate(identity, audience, newKeys),
    close: async () => agent?.destroy(),
  };
}
