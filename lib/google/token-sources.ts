/**
 * The modes and their token sources, one file each: what TpmAuthClient picks from,
 * and what the CLI uses directly, without loading google-auth-library.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { MODES, type TpmAuthMode } from './modes.js';
import { idTokenSource } from './id-token-source.js';
import { jwtAccessSource } from './jwt-access-source.js';
import { oauth2Source } from './oauth2-source.js';
import type { TokenSource, TokenSourceContext, TokenSourceFactory } from './token-source.js';

const SOURCES: Readonly<Record<TpmAuthMode, TokenSourceFactory>> = {
  'jwt-access': jwtAccessSource,
  oauth2: oauth2Source,
  'id-token': idTokenSource,
};

export { MODES, type TpmAuthMode };
export const DEFAULT_UNIVERSE_DOMAIN = 'googleapis.com';

/** What a source is made from; everything but the signer and email has a default. */
export interface TokenSourceOptions {
  mode?: TpmAuthMode;
  signer: () => Promise<Signer>;
  email: string;
  scopes?: readonly string[];
  audience?: string;
  targetAudience?: string;
  /** Default https://oauth2.<universeDomain>/token. */
  tokenUrl?: string;
  tokenTimeoutMs?: number;
  tokenLifetime?: number;
  universeDomain?: string;
  servicePath?: () => string | undefined;
}

/** The token source for `options.mode` (default jwt-access). Throws ERR_INVALID_ARGUMENT. */
export function makeTokenSource(options: TokenSourceOptions): TokenSource {
  const mode = options.mode ?? 'jwt-access';
  if (!Object.hasOwn(SOURCES, mode)) throw invalidArgument(`mode must be one of ${MODES.join(', ')}`);
  const universeDomain = options.universeDomain ?? DEFAULT_UNIVERSE_DOMAIN;
  const context: TokenSourceContext = {
    email: options.email,
    scopes: options.scopes,
    audience: options.audience,
    targetAudience: options.targetAudience,
    tokenUrl: options.tokenUrl ?? defaultTokenUrl(universeDomain),
    tokenTimeoutMs: options.tokenTimeoutMs ?? 30_000,
    tokenLifetime: options.tokenLifetime,
    universeDomain,
    signer: options.signer,
    servicePath: options.servicePath ?? (() => undefined),
  };
  return SOURCES[mode](context);
}

export function defaultTokenUrl(universeDomain: string): string {
  return `https://oauth2.${universeDomain}/token`;
}
