/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1, 24; Part 3, 12.6), the verifier's
 * half of credential activation: the outer wrapper of duplication (a fresh seed
 * encrypted to the EK with the label "IDENTITY", keys derived from it) around the
 * secret, bound to the AK's Name. Only the TPM holding that EK, with that AK loaded,
 * recovers the secret (TPM2_ActivateCredential).
 */
import type { KeyObject } from 'node:crypto';

import { anyCurve, hashByName, type CurveInfo } from '../algorithms.js';
import { TpmJwtError } from '../errors.js';
import { outerWrap, tpm2b, type WrapParameters, type WrappingParent } from './duplication.js';
import { ecPoint } from './public-key.js';

/**
 * The EK's name algorithm and AES key size, as the TCG EK templates pair them with its
 * key: RSA 2048 and P-256 (L-1, L-2, H-1, H-2) SHA-256 and AES-128; larger keys (H-3 to
 * H-7, swtpm's P-384) the hash of their strength (SHA-384, SHA-512) and AES-256.
 */
function ekParameters(ek: KeyObject): WrapParameters {
  const byHash = (hash: CurveInfo['hash']): WrapParameters => ({
    label: 'IDENTITY',
    hash: hashByName(hash),
    aesBits: hash === 'sha256' ? 128 : 256,
  });
  if (ek.asymmetricKeyType === 'rsa') {
    return byHash((ek.asymmetricKeyDetails?.modulusLength ?? 0) <= 2048 ? 'sha256' : 'sha384');
  }
  const curve = ek.asymmetricKeyType === 'ec' ? anyCurve(ek.asymmetricKeyDetails?.namedCurve) : undefined;
  if (!curve) {
    throw new TpmJwtError(
      'ERR_TPM_UNSUPPORTED',
      `an EK of type ${ek.asymmetricKeyType} ${ek.asymmetricKeyDetails?.namedCurve ?? ''} is not supported`,
    );
  }
  return byHash(curve.hash);
}

/** The EK as the wrapper takes it: ECC coordinates at the curve's full width. */
function wrappingEk(ek: KeyObject): WrappingParent {
  const curve = ek.asymmetricKeyType === 'ec' ? anyCurve(ek.asymmetricKeyDetails?.namedCurve) : undefined;
  if (!curve) return { type: 'rsa', publicKey: ek };
  return { type: 'ecc', curve, ...ecPoint(ek.export({ format: 'jwk' }), curve.size) };
}

/** TPM2_MakeCredential's outputs, each with its 16-bit size, as TPM2_ActivateCredential takes them. */
interface Credential {
  /** TPM2B_ID_OBJECT: the integrity HMAC and the encrypted secret. */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the EK. */
  encryptedSecret: Buffer;
}

/**
 * Wraps `secret` (at most the EK's digest size) for the TPM holding `ek`, to be released
 * only to the object named `objectName` (the AK). Throws ERR_TPM_UNSUPPORTED for an EK
 * type no TCG template uses.
 */
export function makeCredential(ek: KeyObject, objectName: Uint8Array, secret: Uint8Array): Credential {
  const p = ekParameters(ek);
  if (secret.length > p.hash.size) throw new RangeError(`the secret is longer than ${p.hash.size} bytes`);
  const plain = tpm2b(secret);
  try {
    const { wrapped, encryptedSeed } = outerWrap(plain, objectName, wrappingEk(ek), p);
    return { credentialBlob: wrapped, encryptedSecret: tpm2b(encryptedSeed) };
  } finally {
    plain.fill(0);
  }
}
