/**
 * The verifier of a tpm-jwt attestation, for servers (no TPM, no addon): one check per
 * claim the document makes, each passing or failing with its reason, and, when every
 * check passes, the key's JWK. The checks:
 *   ek-certificate     an EK certificate from the TPM (by its extensions) chains to the EK roots
 *   ak-bound           the AK is in that TPM: credential activation answered, or a platform
 *                      AK certificate chains to the AK roots, names this AK and the EK's
 *                      device; every piece of evidence given must hold
 *   ak-attributes      the AK is restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin, not
 *                      decrypt, RSA-2048+ or P-256/384/521, with a SHA-256 (or larger) Name and
 *                      fixed signing scheme
 *   certify-info       the TPM made the TPMS_ATTEST (TPM_GENERATED_VALUE), a certification
 *                      by this AK as an endorsement-hierarchy primary
 *   certify-signature  the AK's signature over it verifies, in the AK's own scheme
 *   qualifying-data    it carries the verifier's nonce, or binds the document's kid and email
 *   certified-name     the certified Name is the Name of the key's public area
 *   key-attributes     the key is fixedTPM|fixedParent|sensitiveDataOrigin|sign, not decrypt,
 *                      RSA-2048+ or P-256/384/521, with a SHA-256 (or larger) Name: made inside
 *                      this TPM, never able to leave it
 */
import {
  constants,
  timingSafeEqual,
  verify as verifySignature,
  type KeyObject,
  type X509Certificate,
} from 'node:crypto';

import { anyCurve, TPM2_ALG } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import { keyThumbprint, publicJwk, type PublicJwk } from '../jwk.js';
import { keyBinding, parseNonce } from '../wire/attestation-format.js';
import { decodeAttributes, describeKey, leftPad, publicKeyOf, type KeyAttributes } from '../wire/public-key.js';
import {
  hashLabel,
  objectName,
  parseAttest,
  parsePublic,
  parseSignature,
  primaryQualifiedName,
  strongHash,
  TPM_GENERATED_VALUE,
  TPM_RH_ENDORSEMENT,
  TPM_ST_ATTEST_CERTIFY,
  type TpmAttest,
  type TpmPublic,
  type TpmSignature,
} from '../wire/tpm-structures.js';
import { akCertificateProblem, chainToRoots, describe, rootCertificates, type Roots } from './certificates.js';
import { checkActivation, readActivation, type ReadActivation } from './challenge.js';
import { readAttestation, trustedEks, type ReadAttestation, type TrustedEk } from './document.js';

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
  /**
   * Only when ok: the certified key's public JWK; kid is the document's when the
   * qualifying data binds it, else the thumbprint.
   */
  readonly jwk?: PublicJwk;
  /** Only when ok: the service account the qualifying data binds, when it binds one. */
  readonly email?: string;
}

export interface VerifyAttestationOptions {
  /** Trust anchors for the EK certificates: PEM text, or certificates. */
  roots: Roots;
  /**
   * Trust anchors for a platform's AK certificate (GCE's EK/AK CA). Without them an AK
   * certificate in the document is not evidence: the EK roots never vouch for an AK.
   */
  akRoots?: Roots;
  /** The nonce the verifier gave the device (hex or bytes); without it the kid and email binding is expected. */
  nonce?: string | Uint8Array;
  /**
   * Credential activation: the `expected` that createActivationChallenge returned (kept by
   * the verifier, never sent), and the device's response to its challenge.
   */
  activation?: { expected: unknown; response: unknown };
  /** When the certificates must be valid; default now. */
  at?: Date;
}

/** A check's outcome: whether it passed, and why. */
type Outcome = [boolean, string];

/**
 * Runs a check; a structure it cannot compute with (an unknown name algorithm, say) fails
 * it with the reason rather than throwing, and so does anything unforeseen.
 */
function guarded(check: () => Outcome): Outcome {
  try {
    return check();
  } catch (err) {
    return [false, err instanceof TpmJwtError ? err.message : `the check could not run: ${(err as Error).message}`];
  }
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

/** The smallest RSA modulus a verifier accepts (NIST SP 800-131A; go-attestation and openssl's level 2 agree). */
const MIN_RSA_BITS = 2048;

/** The number of bits in a big-endian unsigned integer. */
function bitLength(bytes: Buffer): number {
  const first = bytes.findIndex((b) => b !== 0);
  return first < 0 ? 0 : (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first]!));
}

/**
 * Why a public area's key is too weak to vouch for anything, or undefined: RSA of at
 * least 2048 bits whose keyBits is its modulus's real length (a TPM fills both), ECC on
 * P-256, P-384 or P-521.
 */
function weakKey(pub: TpmPublic): string | undefined {
  if (pub.rsa) {
    const bits = bitLength(pub.rsa.modulus);
    if (bits !== pub.rsa.bits) return `its keyBits (${pub.rsa.bits}) is not its modulus's length (${bits} bits)`;
    return bits < MIN_RSA_BITS ? `it is RSA-${bits}, weaker than RSA-${MIN_RSA_BITS}` : undefined;
  }
  const curve = pub.ecc && anyCurve(pub.ecc.curve);
  return curve ? undefined : `its curve (0x${pub.ecc?.curve.toString(16)}) is none of P-256, P-384, P-521`;
}

/** Why a name algorithm is too weak to identify an object, or undefined. */
function weakName(pub: TpmPublic): string | undefined {
  return strongHash(pub.nameAlg) ? undefined : `its name algorithm is ${hashLabel(pub.nameAlg)}, not SHA-256 or larger`;
}

function verifyTpmSignature(key: KeyObject, data: Buffer, signature: TpmSignature): boolean {
  const hash = strongHash(signature.hash)!.node;
  if (signature.rsa) {
    const padding =
      signature.sigAlg === TPM2_ALG.RSAPSS
        ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_AUTO }
        : { padding: constants.RSA_PKCS1_PADDING };
    return verifySignature(hash, data, { key, ...padding }, signature.rsa);
  }
  // TPMs drop leading zero bytes of r and s; IEEE P1363 wants them at full width.
  const size = anyCurve(key.asymmetricKeyDetails?.namedCurve)?.size;
  const { r, s } = signature.ecdsa!;
  if (size === undefined || r.length > size || s.length > size) return false;
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

/** Why the platform's AK certificate does not bind this AK to the attested TPM, or undefined. */
function akCertificateGap(
  cert: X509Certificate,
  { read, akKey }: Parts,
  akRoots: readonly X509Certificate[],
  trusted: readonly TrustedEk[],
  at: Date,
): string | undefined {
  if (read.ekCertificates.some((ek) => ek.cert.raw.equals(cert.raw))) {
    return 'the AK certificate is one of the EK certificates';
  }
  const notAk = akCertificateProblem(cert);
  if (notAk) return `${describe(cert)} is not an AK certificate: ${notAk}`;
  const chain = chainToRoots(cert, read.chain, akRoots, at);
  if (!chain.ok) return `AK certificate: ${chain.why}`;
  if (!akKey.ok) return akKey.why;
  if (!cert.publicKey.equals(akKey.value)) return 'the AK certificate is for another key than the AK';
  // A platform issues the EK and AK certificates of one device to one subject (GCE: the instance).
  if (cert.subject === '' || !trusted.some((ek) => ek.cert.subject === cert.subject)) {
    return `the AK certificate's subject (${describe(cert)}) is not that of a trusted EK certificate: another device's`;
  }
  return undefined;
}

function akBound(
  parts: Parts,
  akRoots: readonly X509Certificate[] | undefined,
  activation: ReadActivation | undefined,
  trusted: readonly TrustedEk[],
  at: Date,
): Outcome {
  const { read, ak } = parts;
  if (!ak.ok) return [false, ak.why];
  const proofs: string[] = [];
  const gaps: string[] = [];
  const notes: string[] = [];
  const cert = read.akCertificate;
  if (cert && !akRoots) {
    notes.push('the AK certificate was not checked: no AK roots were given');
  } else if (cert && akRoots) {
    const gap = akCertificateGap(cert, parts, akRoots, trusted, at);
    if (gap) gaps.push(gap);
    else proofs.push(`AK certificate ${describe(cert)} names this AK and chains to an AK root`);
  }
  if (activation) {
    const why = checkActivation(activation, objectName(ak.value), trusted);
    if (why) gaps.push(why);
    else proofs.push('the TPM holding the EK recovered the credential made for this AK (credential activation)');
  }
  if (proofs.length === 0 && gaps.length === 0) {
    gaps.push(
      'nothing ties the AK to the EK: neither a credential activation nor a platform AK certificate checked ' +
        'against AK roots',
    );
  }
  return gaps.length === 0 ? [true, [...proofs, ...notes].join('; ')] : [false, [...gaps, ...notes].join('; ')];
}

function akAttributes({ ak }: Parts): Outcome {
  if (!ak.ok) return [false, ak.why];
  const pub = ak.value;
  // sensitiveDataOrigin: an AK made inside the TPM, not a key someone imported and kept a copy of.
  const wrong = attributeProblems(
    pub.attributes,
    ['restricted', 'sign', 'fixedTPM', 'fixedParent', 'sensitiveDataOrigin'],
    ['decrypt'],
  );
  for (const weak of [weakName(pub), weakKey(pub)]) if (weak) wrong.push(weak);
  if (pub.scheme === TPM2_ALG.NULL) wrong.push('it has no fixed signing scheme');
  else if (!strongHash(pub.schemeHash)) wrong.push(`its signing scheme's hash is ${hashLabel(pub.schemeHash)}`);
  return wrong.length === 0
    ? [
        true,
        `restricted|sign|fixedTPM|fixedParent|sensitiveDataOrigin, Name and signatures in ${hashLabel(pub.schemeHash)}`,
      ]
    : [false, wrong.join(', ')];
}

function certifyInfo({ ak, attest }: Parts): Outcome {
  if (!attest.ok) return [false, attest.why];
  const wrong: string[] = [];
  if (attest.value.magic !== TPM_GENERATED_VALUE) wrong.push('its magic is not TPM_GENERATED_VALUE: no TPM made it');
  if (attest.value.type !== TPM_ST_ATTEST_CERTIFY) wrong.push('it is not a TPM2_Certify attestation');
  const signer = ak.ok ? parse(() => primaryQualifiedName(ak.value, TPM_RH_ENDORSEMENT)) : ak;
  if (!signer.ok) wrong.push(`its signer cannot be checked: ${signer.why}`);
  else if (!equal(attest.value.qualifiedSigner, signer.value)) {
    wrong.push('its signer is not this AK as an endorsement-hierarchy primary');
  }
  return wrong.length === 0 ? [true, 'a TPM-generated TPM2_Certify by this AK'] : [false, wrong.join('; ')];
}

function certifySignature({ read, ak, akKey, signature }: Parts): Outcome {
  if (!signature.ok) return [false, signature.why];
  if (!ak.ok) return [false, ak.why];
  if (!akKey.ok) return [false, akKey.why];
  const { sigAlg, hash } = signature.value;
  // The AK's scheme is fixed: a signature in any other (a weaker hash) is not the AK's word.
  if (sigAlg !== ak.value.scheme || hash !== ak.value.schemeHash) {
    return [
      false,
      `the signature (scheme 0x${sigAlg.toString(16)}, ${hashLabel(hash)}) is not in the AK's scheme ` +
        `(0x${ak.value.scheme.toString(16)}, ${hashLabel(ak.value.schemeHash)})`,
    ];
  }
  if (!strongHash(hash)) return [false, `the signature's hash is ${hashLabel(hash)}`];
  const good = parse(() => verifyTpmSignature(akKey.value, read.attest, signature.value));
  return good.ok && good.value
    ? [true, "the AK's signature verifies"]
    : [false, "the AK's signature does not verify over the certify info"];
}

function qualifyingData({ read, attest }: Parts, nonce: Buffer | undefined): Outcome {
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

function certifiedName({ key, attest }: Parts): Outcome {
  if (!key.ok) return [false, key.why];
  if (!attest.ok || !attest.value.certified) return [false, 'the attestation certifies no Name'];
  return equal(attest.value.certified.name, objectName(key.value))
    ? [true, "the certified Name is the Name of the key's public area"]
    : [false, "the certified Name is not the Name of the key's public area"];
}

function keyAttributes({ key }: Parts): Outcome {
  if (!key.ok) return [false, key.why];
  const wrong = attributeProblems(
    key.value.attributes,
    ['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'sign'],
    ['decrypt'],
  );
  for (const weak of [weakName(key.value), weakKey(key.value)]) if (weak) wrong.push(weak);
  if (wrong.length > 0) {
    const imported = wrong.includes('not sensitiveDataOrigin') ? ': the key was made outside the TPM and imported' : '';
    return [false, `${wrong.join(', ')}${imported}`];
  }
  // Nothing vouches for a key tpm-jwt cannot sign with (describeKey says why).
  describeKey(key.value);
  return [true, 'fixedTPM|fixedParent|sensitiveDataOrigin|sign: made in the TPM, cannot leave it'];
}

/**
 * Verifies an attestation document (JSON text or object) and returns the verdict with
 * each check's reason. Throws ERR_INVALID_ARGUMENT only for what is not an attestation
 * document at all (bad JSON, fields, base64 or PEM), for bad roots, nonce or activation
 * documents; a claim that does not hold is a failing reason instead.
 */
export function verifyAttestation(attestation: unknown, options: VerifyAttestationOptions): AttestationVerdict {
  if (typeof options !== 'object' || options === null) throw invalidArgument('options must be an object');
  const read = readAttestation(attestation);
  const roots = rootCertificates(options.roots);
  const akRoots = options.akRoots === undefined ? undefined : rootCertificates(options.akRoots, 'akRoots');
  const nonce = options.nonce === undefined ? undefined : parseNonce(options.nonce);
  const activation = options.activation === undefined ? undefined : readActivation(options.activation);
  const at = options.at ?? new Date();
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw invalidArgument('at must be a valid Date');
  const parts = partsOf(read);
  const { trusted, problems } = trustedEks(read, roots, at);
  const checks: [AttestationCheck, () => Outcome][] = [
    [
      'ek-certificate',
      () =>
        trusted.length > 0
          ? [true, trusted.map((ek) => ek.summary).join('; ')]
          : [false, problems.join('; ') || 'the attestation carries no EK certificate'],
    ],
    ['ak-bound', () => akBound(parts, akRoots, activation, trusted, at)],
    ['ak-attributes', () => akAttributes(parts)],
    ['certify-info', () => certifyInfo(parts)],
    ['certify-signature', () => certifySignature(parts)],
    ['qualifying-data', () => qualifyingData(parts, nonce)],
    ['certified-name', () => certifiedName(parts)],
    ['key-attributes', () => keyAttributes(parts)],
  ];
  const reasons = checks.map(([check, run]) => {
    const [ok, detail] = guarded(run);
    return { check, ok, detail };
  });
  const ok = reasons.every((r) => r.ok);
  if (!ok || !parts.key.ok) return { ok: false, reasons };
  // The document's kid and email count only when the AK signed them (no nonce in their place).
  const bound = !nonce;
  const { publicKey, algorithms } = describeKey(parts.key.value);
  return {
    ok,
    reasons,
    jwk: publicJwk(publicKey, algorithms[0]!, bound ? read.doc.kid : keyThumbprint(publicKey)),
    ...(bound && read.doc.email !== undefined && { email: read.doc.email }),
  };
}
