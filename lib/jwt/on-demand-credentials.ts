/**
 * google.auth.jwt.OnDemandCredentials: one self-signed JWT per audience, the audience
 * being the request URL's scheme://host/path, minted when first needed and cached.
 */
import {
  readServiceAccountFile,
  signerFromServiceAccountInfo,
  type ServiceAccountInfo,
} from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { DEFAULT_LIFETIME_SECONDS } from './credentials.js';
import { applyBearer, mintToken, nearExpiry, type HeaderBag } from './mint.js';

export interface OnDemandCredentialsOptions {
  issuer: string;
  subject: string;
  additionalClaims?: Record<string, unknown>;
  tokenLifetime?: number;
  /** How many audiences' tokens to keep (least recently used go first). */
  maxCacheSize?: number;
  quotaProjectId?: string;
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

export class OnDemandCredentials {
  readonly signer: Signer;
  readonly issuer: string;
  readonly subject: string;
  readonly additionalClaims: Readonly<Record<string, unknown>>;
  readonly tokenLifetime: number;
  readonly maxCacheSize: number;
  readonly quotaProjectId: string | undefined;
  // Map iteration order is insertion order: re-inserting on use makes it an LRU.
  readonly #cache = new Map<string, { token: string; expiry: Date }>();
  readonly #minting = new Map<string, Promise<string>>();

  constructor(signer: Signer, options: OnDemandCredentialsOptions) {
    if (!signer || typeof signer.sign !== 'function') throw invalidArgument('signer must be a Signer');
    if (typeof options?.issuer !== 'string' || typeof options.subject !== 'string') {
      throw invalidArgument('issuer and subject are required strings');
    }
    const claims = { ...(options.additionalClaims ?? {}) };
    if ('aud' in claims || 'scope' in claims) {
      throw invalidArgument('OnDemandCredentials set aud per request; additionalClaims cannot hold aud or scope');
    }
    const lifetime = options.tokenLifetime ?? DEFAULT_LIFETIME_SECONDS;
    if (!Number.isInteger(lifetime) || lifetime <= 0) throw invalidArgument('tokenLifetime must be a positive integer');
    const size = options.maxCacheSize ?? DEFAULT_MAX_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) throw invalidArgument('maxCacheSize must be a positive integer');
    this.signer = signer;
    this.issuer = options.issuer;
    this.subject = options.subject;
    this.additionalClaims = Object.freeze(claims);
    this.tokenLifetime = lifetime;
    this.maxCacheSize = size;
    this.quotaProjectId = options.quotaProjectId;
  }

  static async fromServiceAccountInfo(
    info: ServiceAccountInfo,
    options: Partial<OnDemandCredentialsOptions> = {},
  ): Promise<OnDemandCredentials> {
    const signer = await signerFromServiceAccountInfo(info);
    const email = info.client_email!;
    return new OnDemandCredentials(signer, { issuer: email, subject: email, ...options });
  }

  static async fromServiceAccountFile(
    path: string,
    options: Partial<OnDemandCredentialsOptions> = {},
  ): Promise<OnDemandCredentials> {
    return OnDemandCredentials.fromServiceAccountInfo(await readServiceAccountFile(path), options);
  }

  static fromSigningCredentials(
    credentials: { signer: Signer; signerEmail: string },
    options: Partial<OnDemandCredentialsOptions> = {},
  ): OnDemandCredentials {
    const email = credentials.signerEmail;
    return new OnDemandCredentials(credentials.signer, { issuer: email, subject: email, ...options });
  }

  get signerEmail(): string {
    return this.issuer;
  }

  /** Always true: tokens are made per request. */
  get valid(): boolean {
    return true;
  }

  withClaims(changes: Partial<Pick<OnDemandCredentialsOptions, 'issuer' | 'subject' | 'additionalClaims'>>): OnDemandCredentials {
    return new OnDemandCredentials(this.signer, {
      ...this.#options(),
      ...(changes.issuer !== undefined && { issuer: changes.issuer }),
      ...(changes.subject !== undefined && { subject: changes.subject }),
      additionalClaims: { ...this.additionalClaims, ...(changes.additionalClaims ?? {}) },
    });
  }

  withQuotaProject(quotaProjectId: string): OnDemandCredentials {
    return new OnDemandCredentials(this.signer, { ...this.#options(), quotaProjectId });
  }

  /** There is no single token to refresh; always rejects with ERR_INVALID_ARGUMENT. */
  async refresh(): Promise<void> {
    throw invalidArgument('OnDemandCredentials cannot be refreshed directly; tokens are made per request');
  }

  /**
   * The token for `audience`: cached until close to expiry; concurrent callers share
   * one signing, and a failed signing leaves nothing behind.
   */
  tokenForAudience(audience: string): Promise<string> {
    const cached = this.#cache.get(audience);
    if (cached && !nearExpiry(cached.expiry)) {
      this.#cache.delete(audience);
      this.#cache.set(audience, cached);
      return Promise.resolve(cached.token);
    }
    let minting = this.#minting.get(audience);
    if (!minting) {
      const { issuer, subject, additionalClaims, tokenLifetime } = this;
      minting = mintToken(this.signer, { issuer, subject, additionalClaims, tokenLifetime, audience })
        .then(({ token, expiry }) => {
          this.#remember(audience, token, expiry);
          return token;
        })
        .finally(() => this.#minting.delete(audience));
      this.#minting.set(audience, minting);
    }
    return minting;
  }

  /** Applies the token for the URL's audience (scheme://host/path). */
  async beforeRequest(_request: unknown, _method: string, url: string, headers: HeaderBag): Promise<void> {
    applyBearer(headers, await this.tokenForAudience(audienceForUrl(url)), this.quotaProjectId);
  }

  signBytes(message: Uint8Array): Promise<Uint8Array> {
    return this.signer.sign(message);
  }

  #remember(audience: string, token: string, expiry: Date): void {
    this.#cache.delete(audience);
    this.#cache.set(audience, { token, expiry });
    while (this.#cache.size > this.maxCacheSize) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
  }

  #options(): OnDemandCredentialsOptions {
    return {
      issuer: this.issuer,
      subject: this.subject,
      additionalClaims: { ...this.additionalClaims },
      tokenLifetime: this.tokenLifetime,
      maxCacheSize: this.maxCacheSize,
      ...(this.quotaProjectId !== undefined && { quotaProjectId: this.quotaProjectId }),
    };
  }
}
