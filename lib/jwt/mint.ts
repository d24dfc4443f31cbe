/** What Credentials and OnDemandCredentials share: minting a self-signed JWT and sending it. */
import type { JWTPayload } from 'jose';

import type { Signer } from '../crypt/signer.js';
import { encode } from './encode.js';

/** Tokens are refreshed this long before they expire (google-auth's REFRESH_THRESHOLD). */
export const REFRESH_THRESHOLD_SECONDS = 225;

export interface MintClaims {
  issuer: string;
  subject: string;
  audience?: string | undefined;
  additionalClaims: Readonly<Record<string, unknown>>;
  tokenLifetime: number;
}

/** Signs `{ iss, sub, iat, exp, aud?, ...additionalClaims }` now; `keyId` overrides the signer's kid. */
export async function mintToken(
  signer: Signer,
  claims: MintClaims,
  keyId?: string,
): Promise<{ token: string; expiry: Date }> {
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

/** True from REFRESH_THRESHOLD_SECONDS before `expiry` on. */
export function nearExpiry(expiry: Date): boolean {
  return Date.now() >= expiry.getTime() - REFRESH_THRESHOLD_SECONDS * 1000;
}

/** Request headers as either a plain object or WHATWG Headers. */
export type HeaderBag = Record<string, string> | { set(name: string, value: string): void };

function setHeader(headers: HeaderBag, name: string, value: string): void {
  if (typeof (headers as { set?: unknown }).set === 'function') {
    (headers as { set(name: string, value: string): void }).set(name, value);
  } else {
    (headers as Record<string, string>)[name] = value;
  }
}

/** Sets `authorization: Bearer <token>` and, with a quota project, x-goog-user-project. */
export function applyBearer(headers: HeaderBag, token: string, quotaProjectId: string | undefined): void {
  setHeader(headers, 'authorization', `Bearer ${token}`);
  if (quotaProjectId !== undefined) setHeader(headers, 'x-goog-user-project', quotaProjectId);
}
