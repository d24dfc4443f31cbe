/** The 'oauth2' mode: an OAuth access token for the scopes, from the JWT-bearer grant. */
import { jwtBearerSource } from './jwt-bearer-source.js';
import { scopeClaim } from './scopes.js';
import type { TokenSource, TokenSourceContext } from './token-source.js';

const DEFAULT_EXPIRES_IN_SECONDS = 3600;

/** The oauth2 source for a client's context. */
export function oauth2Source(context: TokenSourceContext): TokenSource {
  return jwtBearerSource(context, {
    claims: { scope: scopeClaim(context.scopes) },
    field: 'access_token',
    expiry(_token, answer) {
      // expires_in is optional in RFC 6749; Google always sends it.
      const expiresIn = Number(answer['expires_in'] ?? DEFAULT_EXPIRES_IN_SECONDS);
      return new Date(Date.now() + (Number.isFinite(expiresIn) ? expiresIn : DEFAULT_EXPIRES_IN_SECONDS) * 1000);
    },
  });
}
