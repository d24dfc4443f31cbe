/**
 * A loopback stand-in for Google's Security Token Service (POST /v1/token, RFC 8693
 * token exchange), written for the federation tests: it checks the grant as STS does
 * and verifies the subject token against the JWKS a provider was given (jose). It also
 * stands in for IAM Credentials' generateAccessToken (impersonation) and generateIdToken,
 * which accept only tokens this STS issued.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { createLocalJWKSet, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';

import { readBody, send } from './http.js';

export interface FakeSts {
  readonly tokenUrl: string;
  /** The base of generateAccessToken URLs (…/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken). */
  readonly iamUrl: string;
  /** Service accounts impersonated, in order. */
  readonly impersonated: string[];
  /** The scopes of each exchange and impersonation, in order. */
  readonly scopes: string[];
  /** ID tokens issued by generateIdToken: the account and the audience, in order. */
  readonly idTokens: { account: string; audience: string }[];
  /** The verified subject tokens' claims, in order. */
  readonly exchanged: JWTPayload[];
  /** The verified subject tokens themselves, in order. */
  readonly subjectTokens: string[];
  /** Access tokens this STS issued. */
  readonly issued: Set<string>;
  close(): Promise<void>;
}

/** An STS for one provider: its audience, the issuer and JWKS it trusts. */
export async function startFakeSts(provider: {
  audience: string;
  issuer: string;
  jwks: JSONWebKeySet;
}): Promise<FakeSts> {
  const keys = createLocalJWKSet(provider.jwks);
  const exchanged: JWTPayload[] = [];
  const subjectTokens: string[] = [];
  const issued = new Set<string>();
  const impersonated: string[] = [];
  const scopes: string[] = [];
  const idTokens: { account: string; audience: string }[] = [];
  const idTokenKey = randomBytes(32);
  const server = createServer(async (req, res) => {
    const generate = /^\/v1\/projects\/-\/serviceAccounts\/([^/:]+):(generateAccessToken|generateIdToken)$/.exec(
      req.url ?? '',
    );
    if (generate) {
      const body = JSON.parse((await readBody(req)) || '{}') as { scope?: string[]; audience?: string };
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (!bearer || !issued.has(bearer)) return send(res, 401, { error: { message: 'not an STS token' } });
      const account = decodeURIComponent(generate[1]!);
      if (generate[2] === 'generateIdToken') {
        // Only the federated principal holds getOpenIdToken (roles/iam.workloadIdentityUser).
        if (!bearer.startsWith('sts.') || !body.audience) return send(res, 403, { error: { message: 'denied' } });
        idTokens.push({ account, audience: body.audience });
        const token = await new SignJWT({ email: account })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer('https://accounts.google.com')
          .setAudience(body.audience)
          .setSubject(account)
          .setIssuedAt()
          .setExpirationTime('1h')
          .sign(idTokenKey);
        return send(res, 200, { token });
      }
      impersonated.push(account);
      scopes.push((body.scope ?? []).join(' '));
      const token = `sa.${randomBytes(16).toString('hex')}`;
      issued.add(token);
      return send(res, 200, { accessToken: token, expireTime: new Date(Date.now() + 3_600_000).toISOString() });
    }
    const form = new URLSearchParams(await readBody(req));
    const expect: Record<string, string> = {
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: provider.audience,
    };
    for (const [field, value] of Object.entries(expect)) {
      if (form.get(field) !== value) return send(res, 400, { error: 'invalid_request', error_description: field });
    }
    if (!/^urn:ietf:params:oauth:token-type:(jwt|id_token)$/.test(form.get('subject_token_type') ?? '')) {
      return send(res, 400, { error: 'invalid_request', error_description: 'subject_token_type' });
    }
    if (!form.get('scope')) return send(res, 400, { error: 'invalid_scope' });
    scopes.push(form.get('scope')!);
    try {
      // As STS does: RS256 or ES256, the provider's issuer, its default allowed audience.
      const { payload } = await jwtVerify(form.get('subject_token') ?? '', keys, {
        algorithms: ['RS256', 'ES256'],
        issuer: provider.issuer,
        audience: `https:${provider.audience}`,
        requiredClaims: ['iat', 'exp', 'sub'],
      });
      exchanged.push(payload);
      subjectTokens.push(form.get('subject_token')!);
    } catch (err) {
      return send(res, 400, { error: 'invalid_grant', error_description: (err as Error).message });
    }
    const token = `sts.${randomBytes(16).toString('hex')}`;
    issued.add(token);
    send(res, 200, {
      access_token: token,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    tokenUrl: `http://127.0.0.1:${port}/v1/token`,
    iamUrl: `http://127.0.0.1:${port}`,
    impersonated,
    scopes,
    idTokens,
    exchanged,
    subjectTokens,
    issued,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
