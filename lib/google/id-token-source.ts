/**
 * The 'id-token' mode: the JWT-bearer grant with `target_audience` returns a
 * Google-signed ID token, for Cloud Run, IAP and other services that verify one.
 */
import { invalidArgument } from '../errors.js';
import { jwtBearerSource } from './jwt-bearer-source.js';
import { jwtExpiry } from './jwt-expiry.js';
import { exchangeFailure } from './token-exchange.js';
import type { TokenSource, TokenSourceContext } from './token-source.js';

/** The id-token source for a client's context; throws ERR_INVALID_ARGUMENT without targetAudience. */
export function idTokenSource(context: TokenSourceContext): TokenSource {
  if (typeof context.targetAudience !== 'string') throw invalidArgument('id-token mode needs targetAudience');
  return jwtBearerSource(context, {
    claims: { target_audience: context.targetAudience },
    field: 'id_token',
    expiry(token) {
      const expiry = jwtExpiry(token);
      if (!expiry) throw exchangeFailure(context.tokenUrl, 'the id_token is not a JWT with an exp');
      return expiry;
    },
  });
}
