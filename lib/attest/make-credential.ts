/**
 * TPM2_MakeCredential in software (TPM 2.0 Part 1, 24; Part 3, 12.6), the verifier's
 * half of credential activation: a fresh seed encrypted to the EK (RSA-OAEP with the
 * label "IDENTITY", or ECDH and KDFe), and the secret wrapped with keys derived from it
 * and bound to the AK's Name. Only the TPM holding that EK, with that AK loaded,
 * recovers the secret (TPM2_ActivateCredential).
 */
import {
  constants,
  createCipheriv,
  createECDH,
  createHmac,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from 'node:crypto';

import { TpmJwtError } from '../errors.js';
import { kdfa, kdfe, tpm2b } from '../tpm/duplication.js';
import { leftPad } from '../tpm/public-key.js';

/** The EK's name algorithm and symmetric key, as the TCG EK templates pair them with its key. */
interface EkParameters {
  hash: 'sha256' | 'sha384' | 'sha512';
  digestSize: number;
  aesBits: 128 | 256;
  /** For ECC: node:crypto's curve name and the coordinate size. */
  curve?: { node: string; size: number };
}

const BY_CURVE: Record<string, EkParameters> = {
  'P-256': { hash: 'sha256', digestSize: 32, aesBits: 128, curve: { node: 'prime256v1', size: 32 } },
  'P-384': { hash: 'sha384', digestSize: 48, aesBits: 256, curve: { node: 'secp384r1', size: 48 } },
  'P-521': { hash: 'sha512', digestSize: 64, aesBits: 256, curve: { node: 'secp521r1', size: 66 } },
};

/**
 * RSA 2048 and P-256 EKs (templates L-1, L-2, H-1, H-2) use SHA-256 and AES-128; the
 * larger ones (H-3 to H-7, swtpm's P-384) SHA-384 or SHA-512 and AES-256.
 */
export function ekParameters(ek: KeyObject): EkParameters {
  if (ek.asymmetricKeyType === 'rsa') {
    const bits = ek.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits <= 2048
      ? { hash: 'sha256', digestSize: 32, aesBits: 128 }
      : { hash: 'sha384', digestSize: 48, aesBits: 256 };
  }
  const curve = ek.asymmetricKeyType === 'ec' ? ek.export({ format: 'jwk' }).crv : undefined;
  const parameters = curve === undefined ? undefined : BY_CURVE[curve];
  if (!parameters) {
    throw new TpmJwtError(
      'ERR_TPM_UNSUPPORTED',
      `an EK of type ${ek.asymmetricKeyType} ${curve ?? ''} is not supported`,
    );
  }
  return parameters;
}

const label = (text: string) => Buffer.from(`${text}\0`, 'latin1');

/** A fresh seed and what carries it to the EK: the TPM2B_ENCRYPTED_SECRET's contents. */
function seedFor(ek: KeyObject, p: EkParameters): { seed: Buffer; encrypted: Buffer } {
  if (!p.curve) {
    const seed = randomBytes(p.digestSize);
    const encrypted = publicEncrypt(
      { key: ek, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: p.hash, oaepLabel: label('IDENTITY') },
      seed,
    );
    return { seed, encrypted };
  }
  const { x: ekX, y: ekY } = ek.export({ format: 'jwk' });
  const x = leftPad(Buffer.from(ekX!, 'base64url'), p.curve.size);
  const y = leftPad(Buffer.from(ekY!, 'base64url'), p.curve.size);
  const ephemeral = createECDH(p.curve.node);
  const point = ephemeral.generateKeys(); // 04 || x || y
  const ephemeralX = point.subarray(1, 1 + p.curve.size);
  const ephemeralY = point.subarray(1 + p.curve.size);
  const z = ephemeral.computeSecret(Buffer.concat([Buffer.of(4), x, y]));
  const seed = kdfe(p.hash, z, 'IDENTITY', ephemeralX, x, p.digestSize * 8);
  z.fill(0);
  return { seed, encrypted: Buffer.concat([tpm2b(ephemeralX), tpm2b(ephemeralY)]) };
}

/** TPM2_MakeCredential's outputs, each with its 16-bit size, as TPM2_ActivateCredential takes them. */
export interface Credential {
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
  if (secret.length > p.digestSize) throw new RangeError(`the secret is longer than ${p.digestSize} bytes`);
  const { seed, encrypted } = seedFor(ek, p);
  const symKey = kdfa(p.hash, seed, 'STORAGE', objectName, Buffer.alloc(0), p.aesBits);
  const cipher = createCipheriv(`aes-${p.aesBits}-cfb`, symKey, Buffer.alloc(16));
  const plain = tpm2b(secret);
  const encIdentity = Buffer.concat([cipher.update(plain), cipher.final()]);
  const hmacKey = kdfa(p.hash, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), p.digestSize * 8);
  const outerHmac = createHmac(p.hash, hmacKey).update(encIdentity).update(objectName).digest();
  for (const secretBytes of [seed, symKey, hmacKey, plain]) secretBytes.fill(0);
  return {
    credentialBlob: tpm2b(Buffer.concat([tpm2b(outerHmac), encIdentity])),
    encryptedSecret: tpm2b(encrypted),
  };
}
