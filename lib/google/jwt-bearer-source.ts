/**
 * What the oauth2 and id-token modes share: a self-signed assertion for the token
 * endpoint, exchanged by the JWT-bearer grant (RFC 7523), the answer cached until
 * shortly before it expires.
 */
import { mintToken } from '../jwt/mint.js';
import { cachedTokenSource, type ExpiringToken } from './cached-token.js';
import { exchangeAssertion, exchangeFailure } from './token-exchange.js';
import type { TokenSource, TokenSourceContext } from './token-source.js';

const ASSERTION_LIFETIME_SECONDS = 3600;

export interface JwtBearerGrant {
  /** The assertion's claims that say what is asked for: a scope, or a target_audience. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The field of the answer that holds the token. */
  readonly field: string;
  /** When `token` expires, read from the token or the answer; throws ERR_TOKEN_EXCHANGE if it cannot tell. */
  expiry(token: string, answer: Record<string, unknown>): Date;
}

/** A source whose tokens come from the JWT-bearer grant at context.tokenUrl; the URL of a request plays no part. */
export function jwtBearerSource(context: TokenSourceContext, grant: JwtBearerGrant): TokenSource {
  return cachedTokenSource(async (): Promise<ExpiringToken> => {
    const { email, tokenUrl, tokenTimeoutMs } = context;
    const { token: assertion } = await mintToken(await context.signer(), {
      issuer: email,
      subject: email,
      audience: tokenUrl,
      additionalClaims: grant.claims,
      tokenLifetime: ASSERTION_LIFETIME_SECONDS,
    });
    const answer = await exchangeAssertion(tokenUrl, assertion, tokenTimeoutMs);
    const token = answer[grant.field];
    if (typeof token !== 'string' || token === '') throw exchangeFailure(tokenUrl, `the answer has no ${grant.field}`);
    return { token, expiry: grant.expiry(token, answer) };
  });
}
