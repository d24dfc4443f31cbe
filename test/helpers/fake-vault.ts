/**
 * A loopback stand-in for HashiCorp Vault's JWT auth method (`POST /v1/auth/jwt/login`),
 * over HTTPS, validating as Vault documents it: the signature against the mount's
 * jwt_validation_pubkeys with one of jwt_supported_algs; the role's bound_audiences (a
 * token with an aud needs the role to bind audiences, and one of them to match),
 * bound_subject and user_claim; exp and nbf with Vault's default leeways (150 s), and a
 * token without exp refused. It answers Vault's `auth` object, or 400 with `errors`.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';

import { loopbackTls } from './loopback-tls.js';

export interface VaultRole {
  bound_audiences: string[];
  bound_subject?: string;
  user_claim: string;
  token_policies: string[];
  token_ttl: number;
}

export interface FakeVault {
  readonly address: string;
  readonly ca: string;
  /** Each login's role and, when refused, why. */
  readonly logins: { role: string; refused?: string }[];
  /** The mount's jwt_validation_pubkeys. */
  readonly validationKeys: KeyObject[];
  readonly roles: Map<string, VaultRole>;
  close(): Promise<void>;
}

const SUPPORTED_ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'EdDSA'];
const LEEWAY = 150;

export async function startFakeVault(dir: string, mount = 'jwt'): Promise<FakeVault> {
  const tls = loopbackTls(dir, 'vault');
  const validationKeys: KeyObject[] = [];
  const roles = new Map<string, VaultRole>();
  const logins: FakeVault['logins'] = [];

  async function refusal(roleName: string, jwt: string): Promise<string | undefined> {
    const role = roles.get(roleName);
    if (!role) return `role "${roleName}" could not be found`;
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(jwt).alg;
    } catch {
      return 'error validating token: malformed token';
    }
    if (!alg || !SUPPORTED_ALGS.includes(alg)) return `error validating token: unsupported algorithm ${alg}`;
    let verified = false;
    for (const key of validationKeys) {
      try {
        await compactVerify(jwt, key, { algorithms: SUPPORTED_ALGS });
        verified = true;
        break;
      } catch {
        // The next key.
      }
    }
    if (!verified) return 'error validating signature';
    const claims = decodeJwt(jwt);
    const now = Date.now() / 1000;
    if (claims.exp === undefined) return 'no expiration time (exp) claim';
    if (claims.exp + LEEWAY < now) return 'error validating claims: token is expired (exp)';
    if (claims.nbf !== undefined && claims.nbf - LEEWAY > now)
      return 'error validating claims: token not valid yet (nbf)';
    if (claims.iat !== undefined && claims.iat - 60 > now)
      return 'error validating claims: token issued in the future (iat)';
    const audiences = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (audiences.length > 0 && role.bound_audiences.length === 0) {
      return 'audience claim found in JWT but no audiences bound to the role';
    }
    if (role.bound_audiences.length > 0 && !audiences.some((a) => role.bound_audiences.includes(a))) {
      return (
        'error validating claims: invalid audience (aud) claim: ' +
        'audience claim does not match any expected audience'
      );
    }
    if (role.bound_subject !== undefined && claims.sub !== role.bound_subject)
      return 'sub claim does not match bound subject';
    if (typeof (claims as Record<string, unknown>)[role.user_claim] !== 'string') {
      return `claim "${role.user_claim}" not found in token`;
    }
    return undefined;
  }

  const server: Server = createServer(tls, (req, res) => {
    const answer = (status: number, body: object) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== `/v1/auth/${mount}/login`) return answer(404, { errors: [] });
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', async () => {
      let login: { role?: unknown; jwt?: unknown };
      try {
        login = JSON.parse(body);
      } catch {
        return answer(400, { errors: ['failed to parse JSON input'] });
      }
      if (typeof login.jwt !== 'string' || login.jwt === '') return answer(400, { errors: ['missing token'] });
      const role = typeof login.role === 'string' ? login.role : '';
      const refused = await refusal(role, login.jwt);
      logins.push({ role, ...(refused !== undefined && { refused }) });
      if (refused !== undefined) return answer(400, { errors: [refused] });
      const { token_policies, token_ttl } = roles.get(role)!;
      answer(200, {
        request_id: randomBytes(16).toString('hex'),
        auth: {
          client_token: `hvs.${randomBytes(18).toString('base64url')}`,
          accessor: randomBytes(12).toString('base64url'),
          policies: ['default', ...token_policies],
          token_policies: ['default', ...token_policies],
          metadata: { role },
          lease_duration: token_ttl,
          renewable: true,
          token_type: 'service',
          orphan: true,
        },
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca: tls.cert,
    logins,
    validationKeys,
    roles,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
