/**
 * A loopback stand-in for Google's Security Token Service (POST /v1/token, RFC 8693
 * token exchange), written for the federation tests: it checks the grant as STS does
 * and verifies the subject token against the JWKS a provider was given (jose). It also
 * stands in for IAM Credentials' generateAccessToken (impersonation) and generateIdToken,
 * which accept only tokens this STS issued.
 *
 * For an X.509 provider it is the mTLS STS, over HTTPS: an mtls subject token is
 * exchanged only on a connection whose client certificate chains to the provider's trust
 * anchor (through the intermediates the client sent), the token's first certificate is
 * that TLS peer's, and the subject is the certificate's CN
 * (google.subject=assertion.subject.dn.cn).
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

import { createLocalJWKSet, jwtVerify, SignJWT, type JSONWebKeySet, type JWTPayload } from 'jose';

import { readBody, send } from './http.js';
import type { LoopbackTls } from './loopback-tls.js';

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
  /** X.509: each TLS connection a request came on, by the client certificate's SHA-256 fingerprint. */
  readonly connections: Map<string, Set<unknown>>;
  close(): Promise<void>;
}

/** An X.509 provider: the STS's own TLS identity and the trust anchor (PEM) client certificates chain to. */
export interface FakeStsX509 {
  tls: LoopbackTls;
  trustAnchor: string;
}

/**
 * Why an mtls subject token on `req`'s connection is refused, or its CN: the connection's
 * client certificate verified against the trust anchor, the token a JSON array of base64
 * DER certificates whose first is that certificate.
 */
function x509Subject(req: IncomingMessage, subjectToken: string): { subject: string } | { refused: string } {
  const socket = req.socket as TLSSocket;
  const peer = socket.getPeerCertificate();
  if (!peer?.raw) return { refused: 'no client certificate: the mTLS STS needs one' };
  if (!socket.authorized) return { refused: `the client certificate does not verify: ${socket.authorizationError}` };
  let chain: unknown;
  try {
    chain = JSON.parse(subjectToken);
  } catch {
    return { refused: 'the subject token is not JSON' };
  }
  if (!Array.isArray(chain) || chain.length === 0 || !chain.every((c) => typeof c === 'string')) {
    return { refused: 'the subject token is not an array of base64 certificates' };
  }
  const leaf = new X509Certificate(Buffer.from(chain[0] as string, 'base64'));
  if (!leaf.raw.equals(peer.raw)) return { refused: "the subject token's certificate is not the TLS peer's" };
  const cn = /^CN=(.*)$/m.exec(leaf.subject)?.[1];
  return cn ? { subject: cn } : { refused: 'the certificate has no CN to map google.subject from' };
}

/** An STS for one provider: its audience, and the issuer and JWKS it trusts or (X.509) its trust anchor. */
export async function startFakeSts(
  provider: { audience: string } & ({ issuer: string; jwks: JSONWebKeySet } | { x509: FakeStsX509 }),
): Promise<FakeSts> {
  const keys = 'jwks' in provider ? createLocalJWKSet(provider.jwks) : undefined;
  const connections = new Map<string, Set<unknown>>();
  const exchanged: JWTPayload[] = [];
  const subjectTokens: string[] = [];
  const issued = new Set<string>();
  const impersonated: string[] = [];
  const scopes: string[] = [];
  const idTokens: { account: string; audience: string }[] = [];
  const idTokenKey = randomBytes(32);
  const handler: RequestListener = async (req, res) => {
    const fingerprint = (req.socket as TLSSocket).getPeerCertificate?.()?.fingerprint256;
    if (fingerprint) connections.set(fingerprint, (connections.get(fingerprint) ?? new Set()).add(req.socket));
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
    const tokenTypes = keys
      ? /^urn:ietf:params:oauth:token-type:(jwt|id_token)$/
      : /^urn:ietf:params:oauth:token-type:mtls$/;
    if (!tokenTypes.test(form.get('subject_token_type') ?? '')) {
      return send(res, 400, { error: 'invalid_request', error_description: 'subject_token_type' });
    }
    if (!form.get('scope')) return send(res, 400, { error: 'invalid_scope' });
    scopes.push(form.get('scope')!);
    if (!keys) {
      const verdict = x509Subject(req, form.get('subject_token') ?? '');
      if ('refused' in verdict) return send(res, 400, { error: 'invalid_grant', error_description: verdict.refused });
      exchanged.push({ sub: verdict.subject });
      subjectTokens.push(form.get('subject_token')!);
      return sendToken(res);
    }
    try {
      // As STS does: RS256 or ES256, the provider's issuer, its default allowed audience.
      const { payload } = await jwtVerify(form.get('subject_token') ?? '', keys, {
        algorithms: ['RS256', 'ES256'],
        issuer: (provider as { issuer: string }).issuer,
        audience: `https:${provider.audience}`,
        requiredClaims: ['iat', 'exp', 'sub'],
      });
      exchanged.push(payload);
      subjectTokens.push(form.get('subject_token')!);
    } catch (err) {
      return send(res, 400, { error: 'invalid_grant', error_description: (err as Error).message });
    }
    sendToken(res);
  };
  const sendToken = (res: Parameters<RequestListener>[1]) => {
    const token = `sts.${randomBytes(16).toString('hex')}`;
    issued.add(token);
    send(res, 200, {
      access_token: token,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
    });
  };
  // X.509: a client certificate is asked for on every connection, and checked where STS checks it.
  const server =
    'x509' in provider
      ? createHttpsServer(
          {
            key: provider.x509.tls.key,
            cert: provider.x509.tls.cert,
            ca: provider.x509.trustAnchor,
            requestCert: true,
            rejectUnauthorized: false,
          },
          handler,
        )
      : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const base = `${'x509' in provider ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    tokenUrl: `${base}/v1/token`,
    iamUrl: base,
    connections,
    impersonated,
    scopes,
    idTokens,
    exchanged,
    subjectTokens,
    issued,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Kept-alive client connections would hold close() open.
        server.closeAllConnections();
      }),
  };
}
