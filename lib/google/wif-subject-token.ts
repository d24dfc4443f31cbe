/**
 * The subject token of keyless Workload Identity Federation, with the TPM key as the
 * identity: a short OIDC-style JWT that Google's STS exchanges (RFC 8693) for a
 * federated access token, after checking it against the JWKS the workload identity
 * provider was given. No service-account key exists anywhere.
 */
import { randomUUID } from 'node:crypto';

import type { JwsAlgorithm } from '../algorithms.js';
import { signerPublicKey, type Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { keyThumbprint } from '../jwk.js';
import { mintToken } from '../jwt/encode.js';

export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ID_TOKEN = 'urn:ietf:params:oauth:token-type:id_token';
export const SUBJECT_TOKEN_TYPES: readonly string[] = [TOKEN_TYPE_JWT, TOKEN_TYPE_ID_TOKEN];

/** Google's STS verifies RS256 and ES256 subject tokens only. */
export const STS_ALGORITHMS: readonly JwsAlgorithm[] = ['RS256', 'ES256'];
const DEFAULT_SUBJECT_TOKEN_LIFETIME = 3600;

interface SubjectTokenOptions {
  /** The issuer URI the provider was created with. */
  issuer: string;
  /** The `aud` claim: one the provider allows (see providerAudience). */
  audience: string;
  /**
   * The workload's identity, `google.subject` after the provider's attribute mapping;
   * default the RFC 7638 thumbprint of the signer's public key.
   */
  subject?: string;
  /** Seconds; default 3600 (STS refuses tokens that live longer than a day). */
  lifetime?: number;
  /** The `kid` header; default the signer's, else the RFC 7638 thumbprint of its key, as in the JWKS. */
  keyId?: string;
}

/**
 * The provider's default allowed audience for the audience a credential configuration
 * names (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/V`):
 * the same with `https:` in front.
 */
export function providerAudience(stsAudience: string): string {
  if (!stsAudience.startsWith('//')) {
    throw invalidArgument(`audience ${stsAudience} is not a workload identity provider (//iam.googleapis.com/...)`);
  }
  return `https:${stsAudience}`;
}

/**
 * A subject token: header alg/kid/typ, claims iss, sub, aud, iat, exp and a fresh jti.
 * Throws ERR_INVALID_ARGUMENT for an algorithm STS does not accept (PS256) or bad options.
 */
export async function mintSubjectToken(
  signer: Signer,
  options: SubjectTokenOptions,
): Promise<{ token: string; expiry: Date }> {
  if (!STS_ALGORITHMS.includes(signer.algorithm)) {
    throw invalidArgument(
      `Google's STS accepts ${STS_ALGORITHMS.join(' and ')} subject tokens; this key signs ${signer.algorithm}`,
    );
  }
  // Both defaults name the key as the JWKS does (publicJwk): STS picks its key by kid.
  const publicKey = signerPublicKey(signer);
  const thumbprint = publicKey && keyThumbprint(publicKey);
  const subject = options.subject ?? thumbprint;
  for (const [name, value] of [
    ['issuer', options.issuer],
    ['audience', options.audience],
    ['subject', subject],
  ] as const) {
    if (typeof value !== 'string' || value === '') throw invalidArgument(`${name} is required`);
  }
  const lifetime = options.lifetime ?? DEFAULT_SUBJECT_TOKEN_LIFETIME;
  if (!Number.isInteger(lifetime) || lifetime < 60 || lifetime > 86_400) {
    throw invalidArgument('the subject token lifetime must be 60 to 86400 seconds');
  }
  const keyId = options.keyId ?? signer.keyId ?? thumbprint;
  return mintToken(
    signer,
    {
      issuer: options.issuer,
      subject: subject!,
      audience: options.audience,
      additionalClaims: { jti: randomUUID() },
      tokenLifetime: lifetime,
    },
    keyId,
  );
}
