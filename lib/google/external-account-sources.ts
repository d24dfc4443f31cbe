/**
 * Token sources over google-auth-library's external-account clients (federation):
 * the client's own access token (federated, or the impersonated service account's),
 * and ID tokens from IAM Credentials' generateIdToken, asked with a federated token.
 * Each caches its token until shortly before it expires, one fetch in flight.
 */
import type { BaseExternalAccountClient } from 'google-auth-library';

import { TpmJwtError } from '../errors.js';
import { cachedTokenSource } from './cached-token.js';
import { jwtExpiry } from './jwt-expiry.js';
import type { TokenSource } from './token-source.js';

/** ERR_TOKEN_EXCHANGE for what the client threw, unless it is already ours (a TPM failure keeps its code). */
function exchangeError(what: string, err: unknown): TpmJwtError {
  if (err instanceof TpmJwtError) return err;
  // google-auth-library's message carries the server's own error text (invalid_grant: ...).
  const status = (err as { response?: { status?: number } }).response?.status;
  const message = err instanceof Error ? err.message : String(err);
  const detail = status === undefined ? message : `HTTP ${status}: ${message}`;
  return new TpmJwtError('ERR_TOKEN_EXCHANGE', `${what}: ${detail.slice(0, 500)}`, { cause: err });
}

/** The access tokens `client` obtains (STS, then impersonation when it is configured). */
export function externalAccountSource(client: BaseExternalAccountClient): TokenSource {
  return cachedTokenSource(async () => {
    let token: string | null | undefined;
    try {
      ({ token } = await client.getAccessToken());
    } catch (err) {
      throw exchangeError('federated token exchange', err);
    }
    const expiry = client.credentials.expiry_date;
    if (!token || typeof expiry !== 'number') {
      throw new TpmJwtError('ERR_TOKEN_EXCHANGE', 'federated token exchange: no token with an expiry');
    }
    return { token, expiry: new Date(expiry) };
  });
}

/**
 * ID tokens for `audience` from generateIdToken at `url` (…/serviceAccounts/EMAIL:generateIdToken),
 * called by `client`, whose principal needs roles/iam.workloadIdentityUser on the account.
 */
export function generateIdTokenSource(client: BaseExternalAccountClient, url: string, audience: string): TokenSource {
  return cachedTokenSource(async () => {
    let token: unknown;
    try {
      ({ token } = (
        await client.request<{ token?: unknown }>({
          url,
          method: 'POST',
          data: { audience, includeEmail: true },
          responseType: 'json',
        })
      ).data);
    } catch (err) {
      throw exchangeError(`generateIdToken ${url}`, err);
    }
    const expiry = jwtExpiry(token);
    if (!expiry) throw new TpmJwtError('ERR_TOKEN_EXCHANGE', `generateIdToken ${url}: the answer has no ID token`);
    return { token: token as string, expiry };
  });
}
