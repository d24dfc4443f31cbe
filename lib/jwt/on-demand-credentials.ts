/**
 * google.auth.jwt.OnDemandCredentials: one self-signed JWT per audience, the audience
 * being the request URL's scheme://host/path, minted when first needed and cached.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { rememberLast } from '../remember-last.js';
import { applyBearer, mintToken, nearExpiry, type HeaderBag } from './mint.js';
import { SigningCredentials, type SigningCredentialsOptions } from './signing-credentials.js';

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
  // Map iteration order is insertion order: re-inserting on use makes it an LRU.
  readonly #cache = new Map<string, { token: string; expiry: Date }>();
  readonly #minting = new Map<string, Promise<{ token: string; expiry: Date }>>();
  readonly #audienceFor = rememberLast(audienceForUrl);

  constructor(signer: Signer, options: OnDemandCredentialsOptions) {
    super(signer, options);
    if ('aud' in this.additionalClaims || 'scope' in this.additionalClaims) {
      throw invalidArgument('OnDemandCredentials set aud per request; additionalClaims cannot hold aud or scope');
    }
    const size = options.maxCacheSize ?? DEFAULT_MAX_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) throw invalidArgument('maxCacheSize must be a positive integer');
    this.maxCacheSize = size;
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
   * The token for `audience`: cached until close to expiry; concurrent callers share
   * one signing, and a failed signing leaves nothing behind.
   */
  async tokenForAudience(audience: string): Promise<string> {
    return (await this.expiringTokenForAudience(audience)).token;
  }

  /** tokenForAudience with the token's expiry. */
  expiringTokenForAudience(audience: string): Promise<{ token: string; expiry: Date }> {
    const cached = this.#fresh(audience);
    if (cached) return Promise.resolve(cached);
    let minting = this.#minting.get(audience);
    if (!minting) {
      const { issuer, subject, additionalClaims, tokenLifetime } = this;
      minting = mintToken(this.signer, { issuer, subject, additionalClaims, tokenLifetime, audience })
        .then((minted) => {
          this.#remember(audience, minted.token, minted.expiry);
          return minted;
        })
        .finally(() => this.#minting.delete(audience));
      this.#minting.set(audience, minting);
    }
    return minting;
  }

  /** The cached token for `audience` if it is not close to expiry; no signing. */
  cachedToken(audience: string): string | undefined {
    return this.#fresh(audience)?.token;
  }

  /** Applies the token for the URL's audience (scheme://host/path). */
  async beforeRequest(_request: unknown, _method: string, url: string, headers: HeaderBag): Promise<void> {
    const audience = this.#audienceFor(url);
    const token = this.cachedToken(audience) ?? (await this.tokenForAudience(audience));
    applyBearer(headers, token, this.quotaProjectId);
  }

  /** The cached entry for `audience` if not close to expiry, marked as just used. */
  #fresh(audience: string): { token: string; expiry: Date } | undefined {
    const cached = this.#cache.get(audience);
    if (!cached || nearExpiry(cached.expiry)) return undefined;
    this.#cache.delete(audience);
    this.#cache.set(audience, cached);
    return cached;
  }

  #remember(audience: string, token: string, expiry: Date): void {
    this.#cache.delete(audience);
    this.#cache.set(audience, { token, expiry });
    while (this.#cache.size > this.maxCacheSize) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
  }

  protected override options(): OnDemandCredentialsOptions {
    return { ...super.options(), maxCacheSize: this.maxCacheSize };
  }
}
