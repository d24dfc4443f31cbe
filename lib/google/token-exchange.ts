/** The OAuth 2.0 JWT-bearer grant (RFC 7523): a signed assertion in, a token out. */
import { TpmJwtError } from '../errors.js';

export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** The ERR_TOKEN_EXCHANGE error for `tokenUrl`, its message prefixed with the endpoint. */
export function exchangeFailure(tokenUrl: string, message: string, cause?: unknown): TpmJwtError {
  return new TpmJwtError('ERR_TOKEN_EXCHANGE', `token endpoint ${tokenUrl}: ${message}`, { cause });
}

/**
 * POSTs the assertion and returns the endpoint's JSON. Throws ERR_TOKEN_EXCHANGE with
 * the server's own error text for an error status, on timeout and for a body that is
 * not a JSON object.
 */
export async function exchangeAssertion(
  tokenUrl: string,
  assertion: string,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message;
    throw exchangeFailure(tokenUrl, reason, err);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = body as { error?: unknown; error_description?: unknown } | undefined;
    const detail =
      typeof error?.error === 'string'
        ? [error.error, error.error_description].filter((x) => typeof x === 'string').join(': ')
        : text.slice(0, 200);
    throw exchangeFailure(tokenUrl, `HTTP ${response.status}${detail ? ` ${detail}` : ''}`);
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw exchangeFailure(tokenUrl, `answered ${response.status} without a JSON object`);
  }
  return body as Record<string, unknown>;
}
