/**
 * Credential activation, the verifier's side: a challenge for the device, encrypted to
 * an EK whose certificate chains to the verifier's roots and bound to the Name of the
 * AK in the attestation; and the check of the device's answer. The verifier keeps its
 * own copy of the challenge: the answer is checked against that copy's secret digest.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { TPM2_ALG } from '../algorithms.js';
import { invalidArgument } from '../errors.js';
import {
  base64Field,
  CHALLENGE_FORMAT,
  readDocument,
  RESPONSE_FORMAT,
  type ActivationChallenge,
  type ActivationResponse,
} from '../tpm/attestation-format.js';
import { rootCertificates, type Roots } from './certificates.js';
import { readAttestation, trustedEks, type TrustedEk } from './document.js';
import { makeCredential } from './make-credential.js';
import { objectName, parsePublic } from './tpm-structures.js';

export interface ChallengeOptions {
  /** Trust anchors for the EK certificate (PEM text, or certificates). */
  roots: Roots;
  /** Which EK to encrypt to when the TPM has both: 'rsa' (default) or 'ecc'. */
  ek?: 'rsa' | 'ecc';
  /** When the certificates must be valid; default now. */
  at?: Date;
}

/**
 * A challenge only the attested TPM can answer, for the device's activateCredential.
 * Throws ERR_INVALID_ARGUMENT for a malformed attestation or when none of its EK
 * certificates chains to `roots`.
 */
export function createActivationChallenge(attestation: unknown, options: ChallengeOptions): ActivationChallenge {
  const read = readAttestation(attestation);
  const roots = rootCertificates(options?.roots);
  const wanted = options.ek ?? 'rsa';
  if (wanted !== 'rsa' && wanted !== 'ecc') throw invalidArgument("ek must be 'rsa' or 'ecc'");
  const ak = parsePublic(read.akPublic, 'the AK public area');
  const { trusted, problems } = trustedEks(read, roots, options.at ?? new Date());
  const type = (ek: TrustedEk) => (ek.publicKey.asymmetricKeyType === 'rsa' ? 'rsa' : 'ecc');
  const ek = trusted.find((e) => type(e) === wanted) ?? trusted[0];
  if (!ek) throw invalidArgument(`no EK certificate of the attestation chains to the roots: ${problems.join('; ')}`);
  const name = objectName(ak);
  const secret = randomBytes(32);
  try {
    const credential = makeCredential(ek.publicKey, name, secret);
    return {
      format: CHALLENGE_FORMAT,
      ak: {
        name: name.toString('hex'),
        type: ak.type === TPM2_ALG.ECC ? 'ecc' : 'rsa',
        ...(read.doc.ak.handle !== undefined && { handle: read.doc.ak.handle }),
      },
      ek: { index: ek.index, publicKey: ek.publicKey.export({ type: 'spki', format: 'der' }).toString('base64') },
      credentialBlob: credential.credentialBlob.toString('base64'),
      encryptedSecret: credential.encryptedSecret.toString('base64'),
      secretDigest: createHash('sha256').update(secret).digest('base64'),
    };
  } finally {
    secret.fill(0);
  }
}

/**
 * Whether the device answered the verifier's own `challenge` for this AK and for an EK
 * among `trusted`: undefined when it did, else why not. Throws ERR_INVALID_ARGUMENT for
 * a malformed challenge or response.
 */
export function checkActivation(
  challenge: unknown,
  response: unknown,
  akName: Buffer,
  trusted: readonly TrustedEk[],
): string | undefined {
  const c = readDocument<ActivationChallenge>(challenge, CHALLENGE_FORMAT, 'activation challenge');
  const r = readDocument<ActivationResponse>(response, RESPONSE_FORMAT, 'activation response');
  const expected = base64Field(c.secretDigest, 'challenge.secretDigest');
  const secret = base64Field(r.secret, 'response.secret');
  if (c.ak?.name !== akName.toString('hex')) return "the challenge was made for another AK than this attestation's";
  const ekKey = base64Field(c.ek?.publicKey, 'challenge.ek.publicKey');
  if (!trusted.some((ek) => ek.publicKey.export({ type: 'spki', format: 'der' }).equals(ekKey))) {
    return 'the challenge was made for an EK whose certificate in this attestation does not chain to the roots';
  }
  const digest = createHash('sha256').update(secret).digest();
  if (expected.length !== digest.length || !timingSafeEqual(expected, digest)) {
    return "the device did not recover the challenge's secret: its TPM does not hold that EK with this AK";
  }
  return undefined;
}
