/** A TPM public area as what the rest of the library needs: a KeyObject and flags. */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

import {
  algorithmInfo,
  ALGORITHMS,
  algorithmsForKey,
  curveByTpmId,
  TPM2_ALG,
  type JwsAlgorithm,
} from '../algorithms.js';
import { TpmJwtError } from '../errors.js';
import type { TpmPublic } from './tpm-structures.js';

/** TPMA_OBJECT bits, by name (TPM 2.0 Part 2, 8.3). */
const ATTRIBUTE_BITS = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

export type KeyAttributes = { readonly [name in keyof typeof ATTRIBUTE_BITS]: boolean };

export function decodeAttributes(bits: number): KeyAttributes {
  const out: Partial<Record<keyof typeof ATTRIBUTE_BITS, boolean>> = {};
  for (const [name, bit] of Object.entries(ATTRIBUTE_BITS)) {
    out[name as keyof typeof ATTRIBUTE_BITS] = (bits & bit) !== 0;
  }
  return Object.freeze(out) as KeyAttributes;
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

export function leftPad(bytes: Uint8Array, size: number): Uint8Array {
  if (bytes.length >= size) return bytes;
  const out = new Uint8Array(size);
  out.set(bytes, size - bytes.length);
  return out;
}

/** An EC key's coordinates from its JWK (public or private), each left-padded to the curve's width, `size` bytes. */
export function ecPoint(jwk: JsonWebKey, size: number): { x: Uint8Array; y: Uint8Array } {
  const coordinate = (value: string | undefined) => leftPad(Buffer.from(value ?? '', 'base64url'), size);
  return { x: coordinate(jwk.x), y: coordinate(jwk.y) };
}

function exponentBytes(exponent: number): Uint8Array {
  // The TPM stores 0 for the default exponent 65537.
  let e = exponent === 0 ? 65537 : exponent;
  const bytes: number[] = [];
  while (e > 0) {
    bytes.unshift(e & 0xff);
    e = Math.floor(e / 256);
  }
  return Uint8Array.from(bytes);
}

function unsupported(message: string): TpmJwtError {
  return new TpmJwtError('ERR_TPM_UNSUPPORTED', message);
}

/**
 * The JWS algorithms a key of this public area can sign with, default first: its type
 * and curve decide, and a fixed scheme in the key narrows them to that one.
 */
function signingAlgorithms(info: TpmPublic, candidates: JwsAlgorithm[]): JwsAlgorithm[] {
  const attributes = decodeAttributes(info.attributes);
  if (!attributes.sign) throw unsupported('the key is not a signing key (its sign attribute is clear)');
  if (info.scheme === TPM2_ALG.NULL) return candidates;
  const fixed = candidates.filter((alg) => {
    const scheme = algorithmInfo(alg)!.tpm.signScheme;
    return scheme.scheme === info.scheme && scheme.hash === info.schemeHash;
  });
  if (fixed.length === 0) {
    throw unsupported(
      `the key's fixed signing scheme (0x${info.scheme.toString(16)}, ` +
        `hash 0x${info.schemeHash.toString(16)}) is none of ${candidates.join(', ')}`,
    );
  }
  return fixed;
}

/** The public key of an RSA or ECC public area on a curve in the table; undefined for other keys. */
export function publicKeyOf(info: TpmPublic): KeyObject | undefined {
  if (info.type === TPM2_ALG.RSA && info.rsa) {
    return createPublicKey({
      key: { kty: 'RSA', n: b64url(info.rsa.modulus), e: b64url(exponentBytes(info.rsa.exponent)) },
      format: 'jwk',
    });
  }
  const curve = info.ecc && curveByTpmId(info.ecc.curve);
  if (info.type === TPM2_ALG.ECC && info.ecc && curve) {
    const { x, y } = info.ecc;
    return createPublicKey({
      key: { kty: 'EC', crv: curve.jwk, x: b64url(leftPad(x, curve.size)), y: b64url(leftPad(y, curve.size)) },
      format: 'jwk',
    });
  }
  return undefined;
}

/** The key's public key and the JWS algorithms it can sign with (default first). */
export function describeKey(info: TpmPublic): {
  publicKey: KeyObject;
  algorithms: JwsAlgorithm[];
} {
  const publicKey = publicKeyOf(info);
  if (publicKey) return { publicKey, algorithms: signingAlgorithms(info, algorithmsForKey(publicKey)) };
  throw unsupported(
    `the key is neither RSA nor ECC NIST P-256 (TPM type 0x${info.type.toString(16)}); ` +
      `tpm-jwt signs ${ALGORITHMS.join(', ')}`,
  );
}
