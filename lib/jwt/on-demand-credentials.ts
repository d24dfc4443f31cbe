/**
 * google.auth.jwt.OnDemandCredentials: one self-signed JWT per audience, the audience
 * being the request URL's scheme://host/path, minted when first needed and cached.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { rememberLast } from '../remember-last.js';
import { mintToken } from './encode.js';
import {
  applyBearer,
  SigningCredentials,
  type HeaderBag,
  type SigningCredentialsOptions,
} from './signing-credentials.js';
import { TokenCache, type ExpiringToken } from './token-cache.js';

export interface OnDemandCredentialsOptions extends SigningCredentialsOptions {
  /** How many audiences' tokens to keep (least recently used go first). */
  maxCacheSize?: number;
}

const DEFAULT_MAX_CACHE_SIZE = 10;

/** scheme://host/path of a URL: query, fragment and user info dropped. */
export function audienceForUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidArgument(`not an absolute URL: ${url}`);
  }
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

export class OnDemandCredentials extends SigningCredentials<OnDemandCredentialsOptions> {
  readonly maxCacheSize: number;
  readonly #tokens: TokenCache<string>;
  readonly #audienceFor = rememberLast(audienceForUrl);

  constructor(signer: Signer, options: OnDemandCredentialsOptions) {
    super(signer, options);
    if ('aud' in this.additionalClaims || 'scope' in this.additionalClaims) {
      throw invalidArgument('OnDemandCredentials set aud per request; additionalClaims cannot hold aud or scope');
    }
    const size = options.maxCacheSize ?? DEFAULT_MAX_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) throw invalidArgument('maxCacheSize must be a positive integer');
    this.maxCacheSize = size;
    this.#tokens = new TokenCache(
      (audience) => {
        const { issuer, subject, additionalClaims, tokenLifetime } = this;
        return mintToken(this.signer, { issuer, subject, additionalClaims, tokenLifetime, audience });
      },
      { maxSize: size },
    );
  }

  /** Always true: tokens are made per request. */
  get valid(): boolean {
    return true;
  }

  /** There is no single token to refresh; always rejects with ERR_INVALID_ARGUMENT. */
  async refresh(): Promise<void> {
    throw invalidArgument('OnDemandCredentials cannot be refreshed directly; tokens are made per request');
  }

  /**
   * The token for `audience`: cached until close to expiry, the least recently used
   * audience dropped past maxCacheSize; concurrent callers share one signing, and a
   * failed signing is not kept (token-cache.ts).
   */
  async tokenForAudience(audience: string): Promise<string> {
    return (await this.expiringTokenForAudience(audience)).token;
  }

  /** tokenForAudience with the token's expiry. */
  expiringTokenForAudience(audience: string): Promise<ExpiringToken> {
    return this.#tokens.get(audience);
  }

  /** The cached token for `audience` if it is not close to expiry; no signing. */
  cachedToken(audience: string): string | undefined {
    return this.#tokens.peek(audience)?.token;
  }

  /** Applies the token for the URL's audience (scheme://host/path). */
  async beforeRequest(_request: unknown, _method: string, url: string, headers: HeaderBag): Promise<void> {
    const audience = this.#audienceFor(url);
    const token = this.cachedToken(audience) ?? (await this.tokenForAudience(audience));
    applyBearer(headers, token, this.quotaProjectId);
  }

  protected override options(): OnDemandCredentialsOptions {
    return { ...super.options(), maxCacheSize: this.maxCacheSize };
  }
}
