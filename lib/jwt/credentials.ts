/**
 * google.auth.jwt.Credentials: a self-signed JWT for one audience (or a `scope`
 * claim), minted by a Signer and sent as the Bearer token.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { applyBearer, mintToken, nearExpiry, type HeaderBag } from './mint.js';
import { SigningCredentials, type SigningCredentialsOptions } from './signing-credentials.js';

export interface CredentialsOptions extends SigningCredentialsOptions {
  audience?: string;
}

export class Credentials extends SigningCredentials<CredentialsOptions> {
  token: string | undefined;
  expiry: Date | undefined;
  readonly audience: string | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(signer: Signer, options: CredentialsOptions) {
    super(signer, options);
    // AIP-4111: a self-signed JWT carries either an audience or a scope, never both.
    const audience = options.audience ?? this.additionalClaims['aud'];
    if (audience !== undefined && this.additionalClaims['scope'] !== undefined) {
      throw invalidArgument('a self-signed JWT has an audience or a scope claim, not both');
    }
    this.audience = options.audience;
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

  protected override options(): CredentialsOptions {
    return { ...super.options(), ...(this.audience !== undefined && { audience: this.audience }) };
  }

  async #mint(): Promise<void> {
    const { token, expiry } = await mintToken(this.signer, this);
    this.token = token;
    this.expiry = expiry;
  }
}
