/**
 * A loopback stand-in for Microsoft Entra's v2.0 endpoints, over HTTPS (MSAL takes no
 * other authority): the tenant's OpenID configuration, and a token endpoint that grants
 * client_credentials only for a client assertion Entra would accept, as its certificate
 * credentials are documented: header alg RS256 or PS256 (RFC 7518: PSS salt the digest's
 * length), x5t#S256 the SHA-256 thumbprint of a registered certificate, whose key verifies
 * the signature; aud this tenant's token endpoint; iss and sub the client id; a jti never
 * seen before; nbf not in the future, exp in the future and at most 10 minutes on.
 */
import { constants, createHash, randomBytes, verify, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { loopbackTls } from './loopback-tls.js';

export interface FakeEntra {
  /** https://127.0.0.1:PORT, for authorityHost. */
  readonly authorityHost: string;
  /** The stand-in's own TLS certificate (PEM), for a client to trust. */
  readonly ca: string;
  /** Every assertion the token endpoint was sent, and why it was refused (undefined: granted). */
  readonly assertions: { assertion: string; refused?: string }[];
  /** Registers `certificatePem` on the app `clientId` in `tenantId`. */
  register(tenantId: string, clientId: string, certificatePem: string): void;
  close(): Promise<void>;
}

const b64url = (text: string) => Buffer.from(text, 'base64url');

export async function startFakeEntra(dir: string): Promise<FakeEntra> {
  const tls = loopbackTls(dir, 'entra');
  const ca = tls.cert;
  const apps = new Map<string, X509Certificate[]>();
  const seen = new Set<string>();
  const assertions: FakeEntra['assertions'] = [];
  let origin = '';

  /** Why Entra would refuse `assertion` for `clientId` in `tenantId`; undefined if it would not. */
  function refusal(tenantId: string, clientId: string, assertion: string): string | undefined {
    const [h, p, s] = assertion.split('.');
    if (!h || !p || !s) return 'AADSTS50027: not a JWT';
    const header = JSON.parse(b64url(h).toString()) as Record<string, unknown>;
    const claims = JSON.parse(b64url(p).toString()) as Record<string, unknown>;
    if (header['alg'] !== 'RS256' && header['alg'] !== 'PS256') return `AADSTS5002738: alg ${String(header['alg'])}`;
    const certificate = apps
      .get(`${tenantId}/${clientId}`)
      ?.find((c) => createHash('sha256').update(c.raw).digest('base64url') === header['x5t#S256']);
    if (!certificate) return 'AADSTS700027: no registered certificate has that x5t#S256';
    const options =
      header['alg'] === 'PS256'
        ? {
            key: certificate.publicKey,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
          }
        : certificate.publicKey;
    if (!verify('sha256', Buffer.from(`${h}.${p}`), options, b64url(s))) return 'AADSTS700027: bad signature';
    if (claims['aud'] !== `${origin}/${tenantId}/oauth2/v2.0/token`)
      return `AADSTS700016: aud ${String(claims['aud'])}`;
    if (claims['iss'] !== clientId || claims['sub'] !== clientId)
      return 'AADSTS700021: iss and sub must be the client id';
    const now = Date.now() / 1000;
    const { nbf, exp, jti } = claims as { nbf?: number; exp?: number; jti?: string };
    if (typeof nbf !== 'number' || nbf > now + 60) return 'AADSTS700024: nbf';
    if (typeof exp !== 'number' || exp <= now || exp - (nbf ?? now) > 600) return 'AADSTS700024: exp';
    if (typeof jti !== 'string' || jti === '' || seen.has(jti)) return 'AADSTS700023: jti missing or replayed';
    seen.add(jti);
    return undefined;
  }

  const server: Server = createServer(tls, (req, res) => {
    const url = new URL(req.url ?? '/', origin);
    const json = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(url.pathname);
    if (req.method === 'GET' && discovery) {
      const tenant = discovery[1]!;
      return json(200, {
        issuer: `${origin}/${tenant}/v2.0`,
        token_endpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
        authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${origin}/${tenant}/oauth2/v2.0/logout`,
        jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
        response_types_supported: ['code'],
      });
    }
    const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
    if (req.method !== 'POST' || !token) return json(404, { error: 'not_found' });
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const assertion = form.get('client_assertion') ?? '';
      const refused =
        form.get('grant_type') !== 'client_credentials'
          ? 'unsupported grant_type'
          : form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
            ? 'AADSTS50027: client_assertion_type'
            : refusal(token[1]!, form.get('client_id') ?? '', assertion);
      assertions.push({ assertion, ...(refused !== undefined && { refused }) });
      if (refused !== undefined) return json(401, { error: 'invalid_client', error_description: refused });
      json(200, {
        token_type: 'Bearer',
        expires_in: 3599,
        ext_expires_in: 3599,
        access_token: `entra-${randomBytes(8).toString('hex')}`,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    authorityHost: origin,
    ca,
    assertions,
    register(tenantId, clientId, certificatePem) {
      const key = `${tenantId}/${clientId}`;
      apps.set(key, [...(apps.get(key) ?? []), new X509Certificate(certificatePem)]);
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
