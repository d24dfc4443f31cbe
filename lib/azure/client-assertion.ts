/**
 * Microsoft Entra certificate credentials with the TPM key: the client assertion an app
 * registration's certificate stands for, signed in the TPM, as Entra's token endpoint
 * requires it (header `x5t#S256`, the SHA-256 thumbprint of the registered certificate;
 * `aud` the tenant's token endpoint; `iss` = `sub` = the client id; `jti`, `nbf`, `exp`).
 * `@azure/identity`'s ClientAssertionCredential takes `azureAssertionCallback` as its
 * getAssertion, so every Azure SDK client authenticates with a key that never leaves the TPM.
 */
import { createHash, randomUUID, verify, X509Certificate } from 'node:crypto';

import { algorithmInfo } from '../algorithms.js';
import { signerPublicKey, type Signer } from '../crypt/signer.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { encode } from '../jwt/encode.js';

export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';

export interface AzureClientAssertionOptions {
  /** The directory (tenant) id or domain. */
  tenantId: string;
  /** The application (client) id of the app registration. */
  clientId: string;
  /** The PEM certificate registered on the app for this key (the first one, if a chain). */
  certificate: string;
  /** Entra's authority host, for a sovereign cloud; default https://login.microsoftonline.com. */
  authorityHost?: string;
  /** Seconds the assertion is valid; default 600 (Entra accepts up to 10 minutes). */
  lifetime?: number;
}

interface Checked {
  audience: string;
  thumbprint: string;
  lifetime: number;
}

/** The options checked once, and what every assertion repeats: its audience and the certificate's thumbprint. */
function check(signer: Signer, options: AzureClientAssertionOptions): Checked {
  for (const name of ['tenantId', 'clientId', 'certificate'] as const) {
    if (typeof options?.[name] !== 'string' || options[name] === '') {
      throw invalidArgument(`${name} must be a non-empty string`);
    }
  }
  if (!/^[A-Za-z0-9.-]+$/.test(options.tenantId)) throw invalidArgument('tenantId must be a tenant id or domain');
  // Entra's certificate credentials are RSA: RS256, or PS256 (RFC 7518).
  if (signer.algorithm !== 'RS256' && signer.algorithm !== 'PS256') {
    throw invalidArgument(`Entra certificate credentials are RSA (RS256 or PS256), not ${signer.algorithm}`);
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(options.certificate);
  } catch (err) {
    throw invalidArgument(`certificate is not a PEM certificate: ${(err as Error).message}`);
  }
  const publicKey = signerPublicKey(signer);
  if (publicKey && !certificate.publicKey.equals(publicKey)) {
    throw invalidArgument('certificate is not for the signing key: Entra would refuse every assertion');
  }
  const host = options.authorityHost ?? DEFAULT_AUTHORITY_HOST;
  let authority: URL;
  try {
    authority = new URL(host);
  } catch {
    throw invalidArgument(`authorityHost ${host} is not a URL`);
  }
  if (authority.protocol !== 'https:') throw invalidArgument('authorityHost must be an https URL');
  const lifetime = options.lifetime ?? 600;
  if (!Number.isInteger(lifetime) || lifetime < 60 || lifetime > 600) {
    throw invalidArgument('lifetime must be 60 to 600 seconds');
  }
  return {
    audience: `${authority.origin}/${options.tenantId}/oauth2/v2.0/token`,
    thumbprint: createHash('sha256').update(certificate.raw).digest('base64url'),
    lifetime,
  };
}

/**
 * A PS256 signature from a TPM that salts RSA-PSS with the largest salt, not the digest's
 * length: some older chips do, and RFC 7518 (so Entra) takes only the digest's length.
 */
function assertDigestLengthSalt(signer: Signer, token: string): void {
  const publicKey = signerPublicKey(signer);
  if (signer.algorithm !== 'PS256' || !publicKey) return;
  const at = token.lastIndexOf('.');
  const input = Buffer.from(token.slice(0, at));
  const signature = Buffer.from(token.slice(at + 1), 'base64url');
  if (verify('sha256', input, { key: publicKey, ...algorithmInfo('PS256')!.node }, signature)) return;
  throw new TpmJwtError(
    'ERR_TPM_UNSUPPORTED',
    "this TPM's RSA-PSS signatures do not use the digest's length as salt, as RFC 7518 and Entra require: " +
      'use RS256 (--alg RS256)',
  );
}

/** A client assertion for Entra's token endpoint, signed now by `signer`. */
export async function azureClientAssertion(signer: Signer, options: AzureClientAssertionOptions): Promise<string> {
  return assertion(signer, options.clientId, check(signer, options));
}

async function assertion(signer: Signer, clientId: string, checked: Checked): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    aud: checked.audience,
    iss: clientId,
    sub: clientId,
    jti: randomUUID(),
    iat: now,
    nbf: now,
    exp: now + checked.lifetime,
  };
  // Entra finds the registered certificate by its thumbprint.
  const token = await encode(signer, payload, { header: { 'x5t#S256': checked.thumbprint } });
  assertDigestLengthSalt(signer, token);
  return token;
}

/**
 * `getAssertion` for `new ClientAssertionCredential(tenantId, clientId, getAssertion)`:
 * checks the options now (ERR_INVALID_ARGUMENT), then signs a fresh assertion each time
 * the credential asks (it asks only when its token runs out).
 */
export function azureAssertionCallback(signer: Signer, options: AzureClientAssertionOptions): () => Promise<string> {
  const checked = check(signer, options);
  return () => assertion(signer, options.clientId, checked);
}
