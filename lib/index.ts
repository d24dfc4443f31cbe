/**
 * tpm-jwt: TPM keys, signers and JWTs. Loads neither the native addon (until a TPM is
 * opened) nor google-auth-library (see tpm-jwt/google).
 */
export { TpmJwtError, type TpmJwtErrorCode, type TpmJwtErrorOptions } from './errors.js';
export { ALGORITHMS, type JwsAlgorithm } from './algorithms.js';
export {
  Tpm,
  type TpmOpenOptions,
  type CreateKeyOptions,
  type LoadKeyOptions,
  type ImportKeyOptions,
} from './tpm/tpm.js';
export type { ImportSource } from './tpm/import.js';
export type { SrkState } from './native.js';
export { TpmKey, type SignOptions } from './tpm/key.js';
export type { CertificateOptions } from './tpm/certificate.js';
export type { CertificationRequestOptions } from './tpm/certification-request.js';
export type { KeyAttributes } from './wire/public-key.js';
export type { PcrSelection } from './tpm/pcrs.js';
export type { Signer } from './crypt/signer.js';
export { SoftwareSigner, type ServiceAccountKeyInfo } from './crypt/software-signer.js';
export { TpmSigner, type TpmSignerOptions } from './crypt/tpm-signer.js';
export * as jwt from './jwt/index.js';
export { jwkThumbprint, publicJwk, type PublicJwk } from './jwk.js';
export {
  activateCredential,
  attestKey,
  createActivationChallenge,
  verifyAttestation,
  type ActivateCredentialOptions,
  type ActivationChallenge,
  type ActivationChallengePair,
  type ActivationExpectation,
  type ActivationResponse,
  type AttestationCheck,
  type AttestationDocument,
  type AttestationKeyOptions,
  type AttestationReason,
  type AttestationTpmOptions,
  type AttestationVerdict,
  type AttestKeyOptions,
  type ChallengeOptions,
  type VerifyAttestationOptions,
} from './attest/index.js';
