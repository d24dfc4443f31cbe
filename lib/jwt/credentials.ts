/**
 * google.auth.jwt.Credentials: a self-signed JWT for one audience (or a `scope`
 * claim), minted by a Signer and sent as the Bearer token.
 */
import {
  readServiceAccountFile,
  signerFromServiceAccountInfo,
  type ServiceAccountInfo,
} from '../crypt/service-account.js';
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { applyBearer, mintToken, nearExpiry, type HeaderBag } from './mint.js';

export const DEFAULT_LIFETIME_SECONDS = 3600;

export interface CredentialsOptions {
  issuer: string;
  subject: string;
  audience?: string;
  additionalClaims?: Record<string, unknown>;
  tokenLifetime?: number;
  quotaProjectId?: string;
}

export class Credentials {
  token: string | undefined;
  expiry: Date | undefined;
  readonly signer: Signer;
  readonly issuer: string;
  readonly subject: string;
  readonly audience: string | undefined;
  readonly additionalClaims: Readonly<Record<string, unknown>>;
  readonly tokenLifetime: number;
  readonly quotaProjectId: string | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(signer: Signer, options: CredentialsOptions) {
    if (!signer || typeof signer.sign !== 'function') throw invalidArgument('signer must be a Signer');
    if (typeof options?.issuer !== 'string' || typeof options.subject !== 'string') {
      throw invalidArgument('issuer and subject are required strings');
    }
    const claims = { ...(options.additionalClaims ?? {}) };
    const audience = options.audience ?? (claims['aud'] as string | undefined);
    // AIP-4111: a self-signed JWT carries either an audience or a scope, never both.
    if (audience !== undefined && claims['scope'] !== undefined) {
      throw invalidArgument('a self-signed JWT has an audience or a scope claim, not both');
    }
    const lifetime = options.tokenLifetime ?? DEFAULT_LIFETIME_SECONDS;
    if (!Number.isInteger(lifetime) || lifetime <= 0) throw invalidArgument('tokenLifetime must be a positive integer');
    this.signer = signer;
    this.issuer = options.issuer;
    this.subject = options.subject;
    this.audience = options.audience;
    this.additionalClaims = Object.freeze(claims);
    this.tokenLifetime = lifetime;
    this.quotaProjectId = options.quotaProjectId;
  }

  /** From a service-account JSON (standard or TPM descriptor); issuer and subject default to client_email. */
  static async fromServiceAccountInfo(
    info: ServiceAccountInfo,
    options: Partial<CredentialsOptions> = {},
  ): Promise<Credentials> {
    const signer = await signerFromServiceAccountInfo(info);
    const email = info.client_email!;
    return new Credentials(signer, { issuer: email, subject: email, ...options });
  }

  static async fromServiceAccountFile(path: string, options: Partial<CredentialsOptions> = {}): Promise<Credentials> {
    return Credentials.fromServiceAccountInfo(await readServiceAccountFile(path), options);
  }

  /** Credentials for `audience` that sign with another credential's signer and email. */
  static fromSigningCredentials(
    credentials: { signer: Signer; signerEmail: string },
    options: Partial<CredentialsOptions> & { audience: string },
  ): Credentials {
    const email = credentials.signerEmail;
    return new Credentials(credentials.signer, { issuer: email, subject: email, ...options });
  }

  get signerEmail(): string {
    return this.issuer;
  }

  /** A copy with these claims changed; keeps tokenLifetime and quotaProjectId. */
  withClaims(changes: Partial<Omit<CredentialsOptions, 'tokenLifetime' | 'quotaProjectId'>>): Credentials {
    return new Credentials(this.signer, {
      ...this.#options(),
      ...(changes.issuer !== undefined && { issuer: changes.issuer }),
      ...(changes.subject !== undefined && { subject: changes.subject }),
      ...(changes.audience !== undefined && { audience: changes.audience }),
      additionalClaims: { ...this.additionalClaims, ...(changes.additionalClaims ?? {}) },
    });
  }

  withQuotaProject(quotaProjectId: string): Credentials {
    return new Credentials(this.signer, { ...this.#options(), quotaProjectId });
  }

  /** True from REFRESH_THRESHOLD_SECONDS before expiry on; false with no token yet. */
  get expired(): boolean {
    return this.expiry !== undefined && nearExpiry(this.expiry);
  }

  get valid(): boolean {
    return this.token !== undefined && !this.expired;
  }

  /** Mints a new token. Concurrent calls share one signing. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#mint().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  /** Sets the Authorization (and x-goog-user-project) headers. */
  apply(headers: HeaderBag, token?: string): void {
    const bearer = token ?? this.token;
    if (bearer === undefined) throw invalidArgument('no token: call refresh() first');
    applyBearer(headers, bearer, this.quotaProjectId);
  }

  /** Refreshes when the token is missing or near expiry, then applies it. */
  async beforeRequest(_request: unknown, _method: string, _url: string, headers: HeaderBag): Promise<void> {
    if (!this.valid) await this.refresh();
    this.apply(headers);
  }

  signBytes(message: Uint8Array): Promise<Uint8Array> {
    return this.signer.sign(message);
  }

  async #mint(): Promise<void> {
    const { token, expiry } = await mintToken(this.signer, this);
    this.token = token;
    this.expiry = expiry;
  }

  #options(): CredentialsOptions {
    return {
      issuer: this.issuer,
      subject: this.subject,
      ...(this.audience !== undefined && { audience: this.audience }),
      additionalClaims: { ...this.additionalClaims },
      tokenLifetime: this.tokenLifetime,
      ...(this.quotaProjectId !== undefined && { quotaProjectId: this.quotaProjectId }),
    };
  }
}
