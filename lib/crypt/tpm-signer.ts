/** A Signer whose key stays in the TPM. */
import type { KeyObject } from 'node:crypto';

import type { JwsAlgorithm } from '../algorithms.js';
import { invalidArgument } from '../errors.js';
import type { TpmKey } from '../tpm/key.js';
import { loadKeyRef } from '../tpm/key-ref.js';
import type { PcrSelection } from '../tpm/pcrs.js';
import { Tpm, type TpmOpenOptions } from '../tpm/tpm.js';
import type { Signer } from './signer.js';

export interface TpmSignerOptions extends TpmOpenOptions {
  /** KEYREF: `handle:0x81000010`, bare hex, or the path of a TSS2 key file. */
  key: string;
  auth?: string | Uint8Array;
  keyId?: string;
  /** Defaults to the key's algorithm (RS256 for RSA, ES256 for P-256). */
  alg?: JwsAlgorithm;
  /** For a persistent key bound to PCRs: the selection it was made with. */
  pcrs?: PcrSelection;
}

export class TpmSigner implements Signer {
  readonly algorithm: JwsAlgorithm;
  readonly keyId: string | undefined;
  readonly key: TpmKey;
  readonly #owned: Tpm | undefined;

  private constructor(key: TpmKey, algorithm: JwsAlgorithm, keyId: string | undefined, owned?: Tpm) {
    this.key = key;
    this.algorithm = algorithm;
    this.keyId = keyId;
    this.#owned = owned;
  }

  get publicKey(): KeyObject {
    return this.key.publicKey;
  }

  /** Opens its own TPM connection and the key; close() releases both. */
  static async open(options: TpmSignerOptions): Promise<TpmSigner> {
    if (typeof options?.key !== 'string') throw invalidArgument('key must be a KEYREF string');
    const { key: ref, auth, keyId, alg, pcrs, ...open } = options;
    const tpm = await Tpm.open(open);
    try {
      const key = await loadKeyRef(tpm, ref, { ...(auth !== undefined && { auth }), ...(pcrs && { pcrs }) });
      return TpmSigner.#make(key, { ...(keyId !== undefined && { keyId }), ...(alg !== undefined && { alg }) }, tpm);
    } catch (err) {
      await tpm.close();
      throw err;
    }
  }

  /** Signs with a key from a Tpm the caller keeps open (and closes). */
  static fromKey(key: TpmKey, options: { keyId?: string; alg?: JwsAlgorithm } = {}): TpmSigner {
    return TpmSigner.#make(key, options);
  }

  static #make(key: TpmKey, options: { keyId?: string; alg?: JwsAlgorithm }, owned?: Tpm): TpmSigner {
    const alg = options.alg ?? key.algorithm;
    if (!key.algorithms.includes(alg)) {
      throw invalidArgument(`this key signs ${key.algorithms.join(', ')}, not ${String(alg)}`);
    }
    return new TpmSigner(key, alg, options.keyId, owned);
  }

  sign(message: Uint8Array): Promise<Uint8Array> {
    return this.key.sign(message, { alg: this.algorithm });
  }

  /** Closes the TPM connection open() made; a no-op for fromKey signers. */
  async close(): Promise<void> {
    await this.#owned?.close();
  }
}
