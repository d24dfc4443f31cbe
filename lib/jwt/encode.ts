/** Compact JWS with an external Signer (jose can only sign with keys it holds). */
import type { Signer } from '../crypt/signer.js';
import { invalidArgument } from '../errors.js';
import { encodeSegment } from './base64url.js';

export interface EncodeOptions {
  /** Extra header members; `alg` cannot differ from the signer's. */
  header?: Record<string, unknown>;
  /** The `kid` header; defaults to the signer's keyId. */
  keyId?: string;
}

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
