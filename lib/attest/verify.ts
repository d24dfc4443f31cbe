/**
 * The verifier of a tpm-jwt attestation, for servers (no TPM, no addon): one check per
 * claim the document makes, each passing or failing with its reason, and the key's JWK.
 * The verdict is ok only when every check passes:
 *   ek-certificate     an EK certificate from the TPM chains to the verifier's roots
 *   ak-bound           the AK is in that TPM: credential activation answered, or a
 *                      platform AK certificate chains to the roots and names the AK
 *   ak-attributes      the AK is restricted|sign|fixedTPM|fixedParent, not decrypt
 *   certify-info       the TPM made the TPMS_ATTEST (TPM_GENERATED_VALUE), a certification
 *                      by this AK as an endorsement-hierarchy primary
 *   certify-signature  the AK's signature over it verifies
 *   qualifying-data    it carries the verifier's nonce, or binds the document's kid and email
 *   certified-name     the certified Name is the Name of the key's public area
 *   key-attributes     the key is fixedTPM|fixedParent|sensitiveDataOrigin|sign, not decrypt:
 *                      made inside this TPM and never able to leave it
 */
import {
  constants,
  timingSafeEqual,
  verify as verifySignature,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';

import { TPM2_ALG } from '../algorithms.js';
import { keyThumbprint, publicJwk, type PublicJwk } from '../jwk.js';
import { keyBinding, parseNonce } from '../tpm/attestation-format.js';
import { decodeAttributes, describeKey, leftPad, publicKeyOf, type KeyAttributes } from '../tpm/public-key.js';
import { chainToRoots, describe, rootCertificates, type Roots } from './certificates.js';
import { checkActivation } from './challenge.js';
import { readAttestation, trustedEks, type ReadAttestation, type TrustedEk } from './document.js';
import {
  hashName,
  objectName,
  parseAttest,
  parsePublic,
  parseSignature,
  primaryQualifiedName,
  TPM_GENERATED_VALUE,
  TPM_RH_ENDORSEMENT,
  TPM_ST_ATTEST_CERTIFY,
  type TpmAttest,
  type TpmPublic,
  type TpmSignature,
} from './tpm-structures.js';

export type AttestationCheck =
  | 'ek-certificate'
  | 'ak-bound'
  | 'ak-attributes'
  | 'certify-info'
  | 'certify-signature'
  | 'qualifying-data'
  | 'certified-name'
  | 'key-attributes';

export interface AttestationReason {
  readonly check: AttestationCheck;
  readonly ok: boolean;
  /** Why it passed or failed, for a person. */
  readonly detail: string;
}

export interface AttestationVerdict {
  /** Every check passed: the key was made in, and cannot leave, a TPM the roots vouch for. */
  readonly ok: boolean;
  readonly reasons: readonly AttestationReason[];
  /** The certified key's public JWK; kid is the document's when the qualifying data binds it, else the thumbprint. */
  readonly jwk?: PublicJwk;
  /** The service account the qualifying data binds, when it binds one. */
  readonly email?: string;
}

export interface VerifyAttestationOptions {
  /** Trust anchors for the EK (and AK) certificates: PEM text, or certificates. */
  roots: Roots;
  /** The nonce the verifier gave the device (hex or bytes); without it the kid and email binding is expected. */
  nonce?: string | Uint8Array;
  /** The verifier's own copy of the challenge it sent, and the device's response. */
  activation?: { challenge: unknown; response: unknown };
  /** When the certificates must be valid; default now. */
  at?: Date;
}

/** A structure that parsed, or why it did not. */
type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

function parse<T>(fn: () => T): Parsed<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    return { ok: false, why: (err as Error).message };
  }
}

/** The names of required attributes that are clear and forbidden ones that are set. */
function attributeProblems(
  bits: number,
  set: readonly (keyof KeyAttributes)[],
  clear: readonly (keyof KeyAttributes)[],
): string[] {
  const attributes = decodeAttributes(bits);
  return [
    ...set.filter((name) => !attributes[name]).map((name) => `not ${name}`),
    ...clear.filter((n) => attributes[n]),
  ];
}

const COORDINATE_SIZE: Record<string, number> = { prime256v1: 32, secp384r1: 48 };

function verifyTpmSignature(key: KeyObject, data: Buffer, signature: TpmSignature): boolean {
  const hash = hashName(signature.hash);
  if (!hash) return false;
  if (signature.rsa) {
    const padding =
      signature.sigAlg === TPM2_ALG.RSAPSS
        ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
        : { padding: constants.RSA_PKCS1_PADDING };
    return verifySignature(hash, data, { key, ...padding }, signature.rsa);
  }
  // TPMs drop leading zero bytes of r and s; IEEE P1363 wants them at full width.
  const size = COORDINATE_SIZE[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? 0;
  const { r, s } = signature.ecdsa!;
  if (r.length > size || s.length > size) return false;
  const rs = Buffer.concat([leftPad(r, size), leftPad(s, size)]);
  return verifySignature(hash, data, { key, dsaEncoding: 'ieee-p1363' }, rs);
}

const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/** The attestation's parts, each parsed or with why it did not parse. */
interface Parts {
  read: ReadAttestation;
  ak: Parsed<TpmPublic>;
  akKey: Parsed<KeyObject>;
  key: Parsed<TpmPublic>;
  attest: Parsed<TpmAttest>;
  signature: Parsed<TpmSignature>;
}

function partsOf(read: ReadAttestation): Parts {
  const ak = parse(() => parsePublic(read.akPublic, 'the AK public area'));
  const akKey: Parsed<KeyObject> = !ak.ok
    ? ak
    : parse(() => {
        const key = publicKeyOf(ak.value);
        if (!key) throw new Error('the AK is neither RSA nor ECC P-256');
        return key;
      });
  return {
    read,
    ak,
    akKey,
    key: parse(() => parsePublic(read.keyPublic, "the key's public area")),
    attest: parse(() => parseAttest(read.attest)),
    signature: parse(() => parseSignature(read.signature)),
  };
}

function akBound(
  { read, ak, akKey }: Parts,
  roots: readonly X509Certificate[],
  trusted: readonly TrustedEk[],
  options: VerifyAttestationOptions,
  at: Date,
): [boolean, string] {
  if (!ak.ok) return [false, ak.why];
  if (!akKey.ok) return [false, akKey.why];
  const proofs: string[] = [];
  const gaps: string[] = [];
  if (read.akCertificate) {
    const chain = chainToRoots(read.akCertificate, read.chain, roots, at);
    if (!chain.ok) gaps.push(`AK certificate: ${chain.why}`);
    else if (!read.akCertificate.publicKey.equals(akKey.value)) gaps.push('the AK certificate is for another key');
    else
      proofs.push(`AK certificate ${describe(read.akCertificate)} names this AK and chains to ${describe(chain.root)}`);
  }
  if (options.activation) {
    const { challenge, response } = options.activation;
    const why = checkActivation(challenge, response, objectName(ak.value), trusted);
    if (why) gaps.push(why);
    else proofs.push('the TPM holding the EK recovered the credential made for this AK (credential activation)');
  }
  if (!read.akCertificate && !options.activation) {
    gaps.push(
      'nothing ties the AK to the EK: run credential activation (createActivationChallenge, then ' +
        'activateCredential on the device) or use a platform AK certificate',
    );
  }
  return proofs.length > 0 ? [true, proofs.join('; ')] : [false, gaps.join('; ')];
}

function akAttributes({ ak }: Parts): [boolean, string] {
  if (!ak.ok) return [false, ak.why];
  const wrong = attributeProblems(ak.value.attributes, ['restricted', 'sign', 'fixedTPM', 'fixedParent'], ['decrypt']);
  return wrong.length === 0 ? [true, 'restricted|sign|fixedTPM|fixedParent'] : [false, wrong.join(', ')];
}

function certifyInfo({ ak, attest }: Parts): [boolean, string] {
  if (!attest.ok) return [false, attest.why];
  const wrong: string[] = [];
  if (attest.value.magic !== TPM_GENERATED_VALUE) wrong.push('its magic is not TPM_GENERATED_VALUE: no TPM made it');
  if (attest.value.type !== TPM_ST_ATTEST_CERTIFY) wrong.push('it is not a TPM2_Certify attestation');
  if (ak.ok && !equal(attest.value.qualifiedSigner, primaryQualifiedName(ak.value, TPM_RH_ENDORSEMENT))) {
    wrong.push('its signer is not this AK as an endorsement-hierarchy primary');
  }
  return wrong.length === 0 ? [true, 'a TPM-generated TPM2_Certify by this AK'] : [false, wrong.join('; ')];
}

function certifySignature({ read, akKey, signature }: Parts): [boolean, string] {
  if (!signature.ok) return [false, signature.why];
  if (!akKey.ok) return [false, akKey.why];
  const good = parse(() => verifyTpmSignature(akKey.value, read.attest, signature.value));
  return good.ok && good.value
    ? [true, "the AK's signature verifies"]
    : [false, "the AK's signature does not verify over the certify info"];
}

function qualifyingData({ read, attest }: Parts, nonce: Buffer | undefined): [boolean, string] {
  if (!attest.ok) return [false, attest.why];
  if (nonce) {
    return equal(attest.value.extraData, nonce)
      ? [true, 'carries the nonce given']
      : [false, 'does not carry the nonce given: a replay, or an answer to another request'];
  }
  const { kid, email } = read.doc;
  const what = `kid ${JSON.stringify(kid)}${email === undefined ? '' : ` and email ${email}`}`;
  return equal(attest.value.extraData, keyBinding(kid, email))
    ? [true, `binds ${what}`]
    : [false, `does not bind ${what} (made over a nonce? give it)`];
}

function certifiedName({ key, attest }: Parts): [boolean, string] {
  if (!key.ok) return [false, key.why];
  if (!attest.ok || !attest.value.certified) return [false, 'the attestation certifies no Name'];
  return equal(attest.value.certified.name, objectName(key.value))
    ? [true, "the certified Name is the Name of the key's public area"]
    : [false, "the certified Name is not the Name of the key's public area"];
}

function keyAttributes({ key }: Parts): [boolean, string] {
  if (!key.ok) return [false, key.why];
  const wrong = attributeProblems(
    key.value.attributes,
    ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'sign'],
    ['decrypt'],
  );
  if (wrong.length === 0)
    return [true, 'fixedTPM|fixedParent|sensitiveDataOrigin|sign: made in the TPM, cannot leave it'];
  const imported = wrong.includes('not sensitiveDataOrigin') ? ': the key was made outside the TPM and imported' : '';
  return [false, `${wrong.join(', ')}${imported}`];
}

/**
 * Verifies an attestation document (JSON text or object) and returns the verdict with
 * each check's reason. Throws ERR_INVALID_ARGUMENT only for what is not an attestation
 * document at all (bad JSON, fields, base64 or PEM), for bad roots or a bad nonce; a
 * claim that does not hold is a failing reason instead.
 */
export function verifyAttestation(attestation: unknown, options: VerifyAttestationOptions): AttestationVerdict {
  const read = readAttestation(attestation);
  const roots = rootCertificates(options?.roots);
  const nonce = options.nonce === undefined ? undefined : parseNonce(options.nonce);
  const at = options.at ?? new Date();
  const parts = partsOf(read);
  const { trusted, problems } = trustedEks(read, roots, at);
  const checks: [AttestationCheck, [boolean, string]][] = [
    [
      'ek-certificate',
      trusted.length > 0
        ? [true, trusted.map((ek) => ek.summary).join('; ')]
        : [false, problems.join('; ') || 'the attestation carries no EK certificate'],
    ],
    ['ak-bound', akBound(parts, roots, trusted, options, at)],
    ['ak-attributes', akAttributes(parts)],
    ['certify-info', certifyInfo(parts)],
    ['certify-signature', certifySignature(parts)],
    ['qualifying-data', qualifyingData(parts, nonce)],
    ['certified-name', certifiedName(parts)],
    ['key-attributes', keyAttributes(parts)],
  ];
  const reasons = checks.map(([check, [ok, detail]]) => ({ check, ok, detail }));
  // The document's kid and email count only when the AK signed them (no nonce in their place).
  const bound = !nonce && reasons.some((r) => r.check === 'qualifying-data' && r.ok);
  const key = parts.key;
  const described = key.ok ? parse(() => describeKey(key.value)) : undefined;
  const jwk =
    described?.ok === true
      ? publicJwk(
          described.value.publicKey,
          described.value.algorithms[0]!,
          bound ? read.doc.kid : keyThumbprint(described.value.publicKey),
        )
      : undefined;
  return {
    ok: reasons.every((r) => r.ok),
    reasons,
    ...(jwk && { jwk }),
    ...(bound && read.doc.email !== undefined && { email: read.doc.email }),
  };
}
