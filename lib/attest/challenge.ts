/**
 * Credential activation, the verifier's side: a challenge for the device, encrypted to
 * an EK certificate of the attestation that chains to the verifier's roots and bound to
 * the Name of its AK, and the expectation the verifier keeps to check the answer. The
 * challenge carries nothing that tells the answer; the expectation never leaves the
 * verifier.
 */
import { createHash, createPublicKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';

import { TPM2_ALG } from '../algorithms.js';
import { hexBytes } from '../encoding.js';
import { invalidArgument } from '../errors.js';
import {
  base64Field,
  CHALLENGE_FORMAT,
  EXPECTED_FORMAT,
  readDocument,
  RESPONSE_FORMAT,
  type ActivationChallenge,
  type ActivationExpectation,
  type ActivationResponse,
} from '../wire/attestation-format.js';
import { makeCredential } from '../wire/make-credential.js';
import { objectName, parsePublic } from '../wire/tpm-structures.js';
import { rootCertificates, type Roots } from './certificates.js';
import { readAttestation, trustedEks, type TrustedEk } from './document.js';

export interface ChallengeOptions {
  /** Trust anchors for the EK certificate (PEM text, or certificates). */
  roots: Roots;
  /** Which EK to encrypt to when the TPM has both: 'rsa' (default) or 'ecc'. */
  ek?: 'rsa' | 'ecc';
  /** When the certificates must be valid; default now. */
  at?: Date;
}

/** What createActivationChallenge makes: one part for the device, one the verifier keeps. */
export interface ActivationChallengePair {
  /** Send to the device (activateCredential, `tpm-jwt attest --activate`). */
  challenge: ActivationChallenge;
  /** Keep, and give verifyAttestation with the device's response; never send it. */
  expected: ActivationExpectation;
}

const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' });

/**
 * A challenge only the attested TPM can answer, for the device's activateCredential, and
 * the expectation to check its answer with. Throws ERR_INVALID_ARGUMENT for a malformed
 * attestation, an AK whose Name cannot be computed, or when none of its EK certificates
 * is an EK certificate that chains to `roots`.
 */
export function createActivationChallenge(attestation: unknown, options: ChallengeOptions): ActivationChallengePair {
  const read = readAttestation(attestation);
  const roots = rootCertificates(options?.roots);
  const wanted = options.ek ?? 'rsa';
  if (wanted !== 'rsa' && wanted !== 'ecc') throw invalidArgument("ek must be 'rsa' or 'ecc'");
  const ak = parsePublic(read.akPublic, 'the AK public area');
  const name = objectName(ak);
  const { trusted, problems } = trustedEks(read, roots, options.at ?? new Date());
  const type = (ek: TrustedEk) => (ek.publicKey.asymmetricKeyType === 'rsa' ? 'rsa' : 'ecc');
  const ek = trusted.find((e) => type(e) === wanted) ?? trusted[0];
  if (!ek) throw invalidArgument(`no EK certificate of the attestation chains to the roots: ${problems.join('; ')}`);
  const secret = randomBytes(32);
  try {
    const credential = makeCredential(ek.publicKey, name, secret);
    const ekPublicKey = spki(ek.publicKey).toString('base64');
    return {
      challenge: {
        format: CHALLENGE_FORMAT,
        ak: {
          name: name.toString('hex'),
          type: ak.type === TPM2_ALG.ECC ? 'ecc' : 'rsa',
          ...(read.doc.ak.handle !== undefined && { handle: read.doc.ak.handle }),
        },
        ek: { index: ek.index, publicKey: ekPublicKey },
        credentialBlob: credential.credentialBlob.toString('base64'),
        encryptedSecret: credential.encryptedSecret.toString('base64'),
      },
      expected: {
        format: EXPECTED_FORMAT,
        akName: name.toString('hex'),
        ekPublicKey,
        secretDigest: createHash('sha256').update(secret).digest('base64'),
      },
    };
  } finally {
    secret.fill(0);
  }
}

/** An activation as verifyAttestation takes it, decoded. */
export interface ReadActivation {
  readonly akName: Buffer;
  readonly ekPublicKey: KeyObject;
  readonly secretDigest: Buffer;
  readonly secret: Buffer;
}

/**
 * The verifier's expectation and the device's response, decoded. Throws
 * ERR_INVALID_ARGUMENT for anything else (a challenge given as the expectation included).
 */
export function readActivation(activation: { expected: unknown; response: unknown }): ReadActivation {
  if (typeof activation !== 'object' || activation === null) {
    throw invalidArgument('activation must be { expected, response }');
  }
  const e = readDocument<ActivationExpectation>(activation.expected, EXPECTED_FORMAT, 'activation expectation');
  const r = readDocument<ActivationResponse>(activation.response, RESPONSE_FORMAT, 'activation response');
  const akName = hexBytes(e.akName);
  if (!akName) throw invalidArgument('expected.akName must be hex');
  const secretDigest = base64Field(e.secretDigest, 'expected.secretDigest');
  if (secretDigest.length !== 32) throw invalidArgument('expected.secretDigest must be a SHA-256 digest');
  const der = base64Field(e.ekPublicKey, 'expected.ekPublicKey');
  let ekPublicKey: KeyObject;
  try {
    ekPublicKey = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch (err) {
    throw invalidArgument(`expected.ekPublicKey is not an SPKI public key: ${(err as Error).message}`);
  }
  const secret = base64Field(r.secret, 'response.secret');
  return { akName, ekPublicKey, secretDigest, secret };
}

/**
 * Whether the device answered the challenge the verifier's expectation was made with,
 * for this AK and for an EK among `trusted`: undefined when it did, else why not.
 */
export function checkActivation(
  activation: ReadActivation,
  akName: Buffer,
  trusted: readonly TrustedEk[],
): string | undefined {
  if (!activation.akName.equals(akName)) return "the challenge was made for another AK than this attestation's";
  const ekKey = spki(activation.ekPublicKey);
  if (!trusted.some((ek) => spki(ek.publicKey).equals(ekKey))) {
    return 'the challenge was made for an EK whose certificate in this attestation is not a trusted EK certificate';
  }
  const digest = createHash('sha256').update(activation.secret).digest();
  if (!timingSafeEqual(activation.secretDigest, digest)) {
    return "the device did not recover the challenge's secret: its TPM does not hold that EK with this AK";
  }
  return undefined;
}
