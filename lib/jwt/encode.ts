/**
 * Compact JWS with an external Signer (jose can only sign with keys it holds), and the
 * self-signed JWT every credential and token source mints with it.
 */
import type { JWTPayload } from 'jose';

import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import type { ExpiringToken } from './token-cache.js';

export interface EncodeOptions {
  /** Extra header members; `alg` cannot differ from the signer's. */
  header?: Record<string, unknown>;
  /** The `kid` header; defaults to the signer's keyId. */
  keyId?: string;
}

/** Unpadded base64url of JSON, as JWS segments are. */
const encodeSegment = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Signs `payload` as a JWT (google.auth.jwt.encode): header `{ alg, typ: 'JWT', kid }`,
 * unpadded base64url segments. Throws ERR_INVALID_ARGUMENT for a non-object payload.
 */
export async function encode(
  signer: Signer,
  payload: Record<string, unknown>,
  options: EncodeOptions = {},
): Promise<string> {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw invalidArgument('payload must be an object');
  }
  const extra = options.header ?? {};
  if (extra['alg'] !== undefined && extra['alg'] !== signer.algorithm) {
    throw invalidArgument(`header alg ${String(extra['alg'])} differs from the signer's ${signer.algorithm}`);
  }
  const kid = options.keyId ?? signer.keyId;
  const header = { alg: signer.algorithm, typ: 'JWT', ...(kid !== undefined && { kid }), ...extra };
  const signingInput = `${encodeSegment(header)}.${encodeSegment(payload)}`;
  const signature = await signer.sign(Buffer.from(signingInput));
  return `${signingInput}.${Buffer.from(signature).toString('base64url')}`;
}

interface MintClaims {
  issuer: string;
  subject: string;
  audience?: string | undefined;
  additionalClaims: Readonly<Record<string, unknown>>;
  tokenLifetime: number;
}

/** Signs `{ iss, sub, iat, exp, aud?, ...additionalClaims }` now; `keyId` overrides the signer's kid. */
export async function mintToken(signer: Signer, claims: MintClaims, keyId?: string): Promise<ExpiringToken> {
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + claims.tokenLifetime;
  const payload: JWTPayload = {
    iss: claims.issuer,
    sub: claims.subject,
    iat,
    exp,
    ...(claims.audience !== undefined && { aud: claims.audience }),
    ...claims.additionalClaims,
  };
  const token = await encode(signer, payload, keyId === undefined ? {} : { keyId });
  return { token, expiry: new Date(exp * 1000) };
}

/**
 * AIP-4111: a self-signed JWT carries an audience or a scope claim, never both. Throws
 * ERR_INVALID_ARGUMENT when both are given.
 */
export function checkAudienceOrScope(audience: unknown, scope: unknown): void {
  if (audience !== undefined && scope !== undefined) {
    throw invalidArgument('a self-signed JWT has an audience or a scope claim, not both');
  }
}
