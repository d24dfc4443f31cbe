import type { KeyObject } from 'node:crypto';

import type { JwsAlgorithm } from '../algorithms.js';

/**
 * What the JWT layer signs with (google.auth.crypt.Signer): an algorithm, an optional
 * key id for the `kid` header, and a JWS-form signature over a message.
 */
export interface Signer {
  readonly algorithm: JwsAlgorithm;
  readonly keyId?: string | undefined;
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** Releases what the signer holds open (a TPM connection); absent when nothing is. */
  close?(): Promise<void>;
}

/**
 * The signer's public key when it has one to give (TpmSigner, SoftwareSigner), for the
 * checks a certificate or a thumbprint needs; undefined for a signer that does not say.
 */
export function signerPublicKey(signer: Signer): KeyObject | undefined {
  return (signer as { publicKey?: KeyObject }).publicKey;
}
