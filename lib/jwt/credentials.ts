/**
 * google.auth.jwt.Credentials: a self-signed JWT for one audience (or a `scope`
 * claim), minted by a Signer and sent as the Bearer token.
 */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { checkAudienceOrScope, mintToken } from './encode.js';
import {
  applyBearer,
  SigningCredentials,
  type HeaderBag,
  type SigningCredentialsOptions,
} from './signing-credentials.js';
import { TokenCache } from './token-cache.js';

export interface CredentialsOptions extends SigningCredentialsOptions {
  audience?: string;
}

/** The one key of a Credentials' cache: it holds one token. */
const ONE = '';

export class Credentials extends SigningCredentials<CredentialsOptions> {
  readonly audience: string | undefined;
  readonly #tokens = new TokenCache(() => mintToken(this.signer, this), { maxSize: 1 });

  constructor(signer: Signer, options: CredentialsOptions) {
    super(signer, options);
    checkAudienceOrScope(options.audience ?? this.additionalClaims['aud'], this.additionalClaims['scope']);
    this.audience = options.audience;
  }

  /** The last token minted, fresh or not; undefined before the first refresh. */
  get token(): string | undefined {
    return this.#tokens.last(ONE)?.token;
  }

  /** When the last token minted expires; undefined before the first refresh. */
  get expiry(): Date | undefined {
    return this.#tokens.last(ONE)?.expiry;
  }

  /** True from REFRESH_THRESHOLD_SECONDS before expiry on; false with no token yet. */
  get expired(): boolean {
    const last = this.#tokens.last(ONE);
    return last !== undefined && !this.#tokens.isFresh(last);
  }

  get valid(): boolean {
    return this.#tokens.peek(ONE) !== undefined;
  }

  /** Mints a new token. Concurrent calls share one signing; a failed one keeps the last token. */
  async refresh(): Promise<void> {
    await this.#tokens.refresh(ONE);
  }

  /** Sets the Authorization (and x-goog-user-project) headers. */
  apply(headers: HeaderBag, token?: string): void {
    const bearer = token ?? this.token;
    if (bearer === undefined) throw invalidArgument('no token: call refresh() first');
    applyBearer(headers, bearer, this.quotaProjectId);
  }

  /** Refreshes when the token is missing or near expiry, then applies it. */
  async beforeRequest(_request: unknown, _method: string, _url: string, headers: HeaderBag): Promise<void> {
    this.apply(headers, (await this.#tokens.get(ONE)).token);
  }

  protected override options(): CredentialsOptions {
    return { ...super.options(), ...(this.audience !== undefined && { audience: this.audience }) };
  }
}
