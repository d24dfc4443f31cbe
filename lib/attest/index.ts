/**
 * Key attestation from the package root: the device's attestKey and activateCredential,
 * the server's verifyAttestation and createActivationChallenge. Each loads its module on
 * first call, so importing the package costs nothing until attestation is used.
 */
import type { ActivationChallenge, ActivationResponse, AttestationDocument } from '../wire/attestation-format.js';
import type { ActivationChallengePair, ChallengeOptions } from './challenge.js';
import type { ActivateCredentialOptions, AttestKeyOptions } from './device.js';
import type { AttestationVerdict, VerifyAttestationOptions } from './verify.js';

export type {
  ActivationChallenge,
  ActivationExpectation,
  ActivationResponse,
  AttestationDocument,
} from '../wire/attestation-format.js';
export type { ActivationChallengePair, ChallengeOptions } from './challenge.js';
export type {
  ActivateCredentialOptions,
  AttestationKeyOptions,
  AttestationTpmOptions,
  AttestKeyOptions,
} from './device.js';
export type { AttestationCheck, AttestationReason, AttestationVerdict, VerifyAttestationOptions } from './verify.js';

/** Device: certifies a TPM key with an AK; the attestation document for a verifier (see device.ts). */
export async function attestKey(options: AttestKeyOptions): Promise<AttestationDocument> {
  return (await import('./device.js')).attestKey(options);
}

/** Device: answers a verifier's activation challenge (or a tpm2_makecredential file) with the recovered secret. */
export async function activateCredential(
  challenge: ActivationChallenge | string | Uint8Array,
  options?: ActivateCredentialOptions,
): Promise<ActivationResponse> {
  return (await import('./device.js')).activateCredential(challenge, options);
}

/** Server, no TPM needed: the verdict on an attestation, each check with its reason; throws only when malformed. */
export async function verifyAttestation(
  attestation: unknown,
  options: VerifyAttestationOptions,
): Promise<AttestationVerdict> {
  return (await import('./verify.js')).verifyAttestation(attestation, options);
}

/**
 * Server, no TPM needed: a credential-activation challenge for the attested TPM's EK and
 * AK. Send `challenge` to the device; keep `expected` for verifyAttestation, never send it.
 */
export async function createActivationChallenge(
  attestation: unknown,
  options: ChallengeOptions,
): Promise<ActivationChallengePair> {
  return (await import('./challenge.js')).createActivationChallenge(attestation, options);
}
