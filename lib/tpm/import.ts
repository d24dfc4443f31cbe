/**
 * Importing an existing RSA or EC P-256 private key (a service account's key) under
 * the TPM's storage parent: wrapped in software for that parent (wire/duplication.ts),
 * unwrapped only inside the TPM by TPM2_Import. The result is a key blob like a
 * created one, usable only by this TPM; the PEM can then be deleted.
 */
import { createHash, createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';

import {
  algorithmInfo,
  algorithmsForKey,
  curveByTpmId,
  isRsaKeySize,
  RSA_KEY_SIZES,
  TPM2_ALG,
  tpmKeySpec,
  type JwsAlgorithm,
} from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { native, type NativeContext } from '../native.js';
import { wrapForImport, type WrappingParent } from '../wire/duplication.js';
import { ecPoint, leftPad, publicKeyOf } from '../wire/public-key.js';
import { readPublicArea } from './public-area.js';

/** What importKey takes: PEM text (PKCS#8, PKCS#1, SEC1) or a service-account JSON. */
export type ImportSource = string | { private_key: string; private_key_id?: string };

interface ImportedBlob {
  public: Buffer;
  private: Buffer;
  alg: JwsAlgorithm;
}

function privateKeyOf(source: ImportSource): KeyObject {
  const pem = typeof source === 'string' ? source : source?.private_key;
  if (typeof pem !== 'string')
    throw invalidArgument('expected a PEM private key or a service account with private_key');
  try {
    return createPrivateKey(pem);
  } catch (err) {
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', 'not a readable PEM private key', { cause: err });
  }
}

const bytes = (b64url: string | undefined) => Buffer.from(b64url ?? '', 'base64url');

/** The key as the TPM will hold it, and the algorithm it will sign with by default. */
function importable(key: KeyObject, auth: Uint8Array | undefined) {
  const jwk: JsonWebKey = key.export({ format: 'jwk' });
  const bits = key.asymmetricKeyDetails?.modulusLength;
  const info = algorithmInfo(algorithmsForKey(key)[0] ?? '');
  if (info?.keyType === 'RSA' && isRsaKeySize(bits)) {
    const exponent = bytes(jwk.e).readUIntBE(0, bytes(jwk.e).length);
    return {
      alg: info.alg,
      spec: tpmKeySpec(info, bits),
      modulus: bytes(jwk.n),
      // The TPM writes the default exponent 65537 as 0.
      exponent: exponent === 65537 ? 0 : exponent,
      secret: leftPad(bytes(jwk.p), bits / 16),
      ...(auth && { auth }),
    };
  }
  if (info?.curve) {
    const size = info.curve.size;
    return {
      alg: info.alg,
      spec: tpmKeySpec(info),
      ...ecPoint(jwk, size),
      secret: leftPad(bytes(jwk.d), size),
      ...(auth && { auth }),
    };
  }
  throw new TpmJwtError(
    'ERR_TPM_UNSUPPORTED',
    `cannot import a ${key.asymmetricKeyType} key${bits ? ` of ${bits} bits` : ''}: ` +
      `RSA ${RSA_KEY_SIZES.join('/')} or EC P-256 only`,
  );
}

/** The parent's public key in the form the wrapper needs. */
async function wrappingParent(context: NativeContext, parent: number): Promise<WrappingParent> {
  const info = readPublicArea(await context.parentPublic(parent), "the parent's public area");
  const curve = info.ecc && curveByTpmId(info.ecc.curve);
  if (info.type === TPM2_ALG.ECC && info.ecc && curve) {
    return { type: 'ecc', curve, x: leftPad(info.ecc.x, curve.size), y: leftPad(info.ecc.y, curve.size) };
  }
  const publicKey = publicKeyOf(info);
  if (!publicKey) throw new TpmJwtError('ERR_TPM_UNSUPPORTED', 'the parent is neither ECC P-256 nor RSA');
  return { type: 'rsa', publicKey };
}

/** Wraps the key for `parent` and has the TPM import it. */
export async function importUnder(
  context: NativeContext,
  parent: number,
  source: ImportSource,
  auth: Uint8Array | undefined,
): Promise<ImportedBlob> {
  const key = importable(privateKeyOf(source), auth);
  const { public: pub, sensitive } = native().marshalImportable(key);
  key.secret.fill(0);
  try {
    // The Name: nameAlg (SHA-256) then the digest of the TPMT_PUBLIC (no size prefix).
    const name = Buffer.concat([Buffer.of(0x00, 0x0b), createHash('sha256').update(pub.subarray(2)).digest()]);
    const { duplicate, inSymSeed } = wrapForImport(sensitive, name, await wrappingParent(context, parent));
    const priv = await context.importKey(parent, pub, duplicate, inSymSeed);
    return { public: pub, private: priv, alg: key.alg };
  } finally {
    sensitive.fill(0);
  }
}
