/** A Signer over a private key in memory (node:crypto): for parity, tests, no-TPM hosts. */
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';

import { algorithmInfo, algorithmsForKey, type JwsAlgorithm } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import type { Signer } from './signer.js';

/** The parts of a service-account JSON a signer needs. */
export interface ServiceAccountKeyInfo {
  private_key: string;
  private_key_id?: string;
}

export class SoftwareSigner implements Signer {
  readonly algorithm: JwsAlgorithm;
  readonly keyId: string | undefined;
  readonly publicKey: KeyObject;
  readonly #key: KeyObject;

  private constructor(key: KeyObject, algorithm: JwsAlgorithm, keyId: string | undefined) {
    this.#key = key;
    this.algorithm = algorithm;
    this.keyId = keyId;
    this.publicKey = createPublicKey(key);
  }

  /**
   * From a PKCS#8, PKCS#1 or SEC1 PEM private key. RSA keys sign RS256 unless `alg`
   * says PS256; P-256 keys sign ES256. Throws ERR_KEY_FILE_INVALID for an unreadable
   * or unsupported key.
   */
  static fromPem(pem: string, keyId?: string, alg?: JwsAlgorithm): SoftwareSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch (err) {
      throw new TpmJwtError('ERR_KEY_FILE_INVALID', 'not a readable PEM private key', { cause: err });
    }
    const algorithms = algorithmsForKey(key);
    if (algorithms.length === 0) {
      throw new TpmJwtError(
        'ERR_KEY_FILE_INVALID',
        `unsupported private key type ${String(key.asymmetricKeyType)}; need RSA or EC P-256`,
      );
    }
    if (alg !== undefined && !algorithms.includes(alg)) {
      throw invalidArgument(`this key signs ${algorithms.join(', ')}, not ${String(alg)}`);
    }
    return new SoftwareSigner(key, alg ?? algorithms[0]!, keyId);
  }

  /** From a service-account JSON's private_key and private_key_id. */
  static fromServiceAccountInfo(info: ServiceAccountKeyInfo): SoftwareSigner {
    if (typeof info?.private_key !== 'string') {
      throw new TpmJwtError('ERR_KEY_FILE_INVALID', 'the service account info has no private_key');
    }
    return SoftwareSigner.fromPem(info.private_key, info.private_key_id);
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    const info = algorithmInfo(this.algorithm)!;
    return sign(info.hash, message, { key: this.#key, ...info.node });
  }
}
