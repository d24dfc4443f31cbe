/** Public keys as JWK and JWKS, with RFC 7638 thumbprints for key ids. */
import { createHash, type JsonWebKey, type KeyObject } from 'node:crypto';

import type { JwsAlgorithm } from './algorithms.js';

export interface PublicJwk extends JsonWebKey {
  kid: string;
  alg: JwsAlgorithm;
  use: 'sig';
}

// The members RFC 7638 hashes, per key type, already in lexicographic order.
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  RSA: ['e', 'kty', 'n'],
  EC: ['crv', 'kty', 'x', 'y'],
};

/** The RFC 7638 SHA-256 thumbprint of a public JWK, base64url. */
export function jwkThumbprint(jwk: JsonWebKey): string {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ''];
  if (!members) throw new TypeError(`no thumbprint for key type ${String(jwk.kty)}`);
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return createHash('sha256').update(canonical).digest('base64url');
}

/** The RFC 7638 thumbprint of a public key: the default kid, and a stable name for it. */
export function keyThumbprint(key: KeyObject): string {
  return jwkThumbprint(key.export({ format: 'jwk' }));
}

/** The public key as a JWK for `alg`; kid defaults to the thumbprint. */
export function publicJwk(key: KeyObject, alg: JwsAlgorithm, kid?: string): PublicJwk {
  const jwk = key.export({ format: 'jwk' });
  return { ...jwk, kid: kid ?? jwkThumbprint(jwk), alg, use: 'sig' };
}
