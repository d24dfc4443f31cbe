/**
 * The 'jwt-access' mode: a self-signed JWT is the Bearer token (AIP-4111), its aud the
 * service's root URL, or a `scope` claim when scopes are set or no audience can be
 * known. No token server is involved.
 */
import { Credentials } from '../jwt/credentials.js';
import { OnDemandCredentials } from '../jwt/on-demand-credentials.js';
import { rememberLast } from '../remember-last.js';
import { serviceAudience } from './audience.js';
import type { ExpiringToken } from './cached-token.js';
import { scopeClaim } from './scopes.js';
import type { RequestUrl, TokenSource, TokenSourceContext } from './token-source.js';

class JwtAccessSource implements TokenSource {
  readonly #context: TokenSourceContext;
  readonly #urlAudience: (url: string | URL) => string | undefined;
  // Both kept as the credentials themselves, not promises, and made only once the
  // signer is there: the cached path stays synchronous and a failed open is not kept.
  #perAudience: OnDemandCredentials | undefined;
  #scoped: Credentials | undefined;

  constructor(context: TokenSourceContext) {
    this.#context = context;
    this.#urlAudience = rememberLast((url: string | URL) => serviceAudience(url, undefined, context.universeDomain));
  }

  cached(url: RequestUrl): string | undefined {
    const audience = this.#audienceFor(url);
    if (audience !== undefined) return this.#perAudience?.cachedToken(audience);
    return this.#scoped?.valid ? this.#scoped.token : undefined;
  }

  async token(url: RequestUrl): Promise<ExpiringToken> {
    const audience = this.#audienceFor(url);
    if (audience !== undefined) {
      if (!this.#perAudience) {
        const signer = await this.#context.signer();
        this.#perAudience ??= new OnDemandCredentials(signer, this.#identity());
      }
      return this.#perAudience.expiringTokenForAudience(audience);
    }
    if (!this.#scoped) {
      const signer = await this.#context.signer();
      this.#scoped ??= new Credentials(signer, {
        ...this.#identity(),
        additionalClaims: { scope: scopeClaim(this.#context.scopes) },
      });
    }
    if (!this.#scoped.valid) await this.#scoped.refresh();
    return { token: this.#scoped.token!, expiry: this.#scoped.expiry! };
  }

  /** The audience for a request (undefined: scope mode). */
  #audienceFor(url: RequestUrl): string | undefined {
    const { scopes, audience, universeDomain } = this.#context;
    if (scopes !== undefined) return undefined;
    if (audience !== undefined) return audience;
    // Without a URL the library's service path decides; it is cheap to read.
    if (url === undefined || url === '') return serviceAudience(undefined, this.#context.servicePath(), universeDomain);
    return this.#urlAudience(url);
  }

  #identity() {
    const { email, tokenLifetime } = this.#context;
    return { issuer: email, subject: email, ...(tokenLifetime !== undefined && { tokenLifetime }) };
  }
}

/** The jwt-access source for a client's context. */
export function jwtAccessSource(context: TokenSourceContext): TokenSource {
  return new JwtAccessSource(context);
}
