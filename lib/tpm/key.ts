/** A signing key that lives in the TPM, as one Tpm context sees it. */
import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto';

import { algorithmInfo, type JwsAlgorithm } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';
import type { NativeContext, NativeKeyRef, NativePreparedKey } from '../native.js';
import { decodeAttributes, describeKey, type KeyAttributes } from '../wire/public-key.js';
import type { TpmPublic } from '../wire/tpm-structures.js';
import type { CertificateOptions } from './certificate.js';
import type { CertificationRequestOptions } from './certification-request.js';
import { encodeKeyFile } from './key-file.js';
import { policyCommands, type PcrSelection } from './pcrs.js';

export interface SignOptions {
  /** Defaults to the key's algorithm (RS256 for RSA keys unless created for PS256). */
  alg?: JwsAlgorithm;
}

/**
 * @internal Makes a TpmKey for Tpm.createKey, loadKey and importKey: the constructor is
 * private, so users get keys only from a Tpm.
 */
export let makeTpmKey: (context: NativeContext, ref: NativeKeyRef, info: TpmPublic, preferred?: JwsAlgorithm) => TpmKey;

/**
 * @internal The addon's own copy of `key`'s reference (handle or blobs, auth value, policy),
 * as prepareKey made it, for library code that makes its own addon calls with a key
 * (attestation). The JavaScript copy of the auth value is zeroed once the key is open.
 */
export let preparedKeyOf: (key: TpmKey) => NativePreparedKey;

/** The context a key's operations run on, for the calls beside sign (TLS). */
export let contextOf: (key: TpmKey) => NativeContext;

export class TpmKey {
  /** The public half, for verifying what this key signs. */
  readonly publicKey: KeyObject;
  readonly attributes: KeyAttributes;
  /** The algorithm `sign` uses by default. */
  readonly algorithm: JwsAlgorithm;
  /** Every algorithm this key can sign with. */
  readonly algorithms: readonly JwsAlgorithm[];
  /** The persistent handle, when the key is persistent. */
  readonly handle: number | undefined;
  /** The PCRs the key's policy binds it to, when it has one. */
  readonly pcrs: PcrSelection | undefined;

  readonly #context: NativeContext;
  readonly #ref: NativeKeyRef;
  readonly #prepared: NativePreparedKey;
  readonly #authPolicy: Buffer;

  static {
    makeTpmKey = (context, ref, info, preferred) => new TpmKey(context, ref, info, preferred);
    preparedKeyOf = (key) => key.#prepared;
    contextOf = (key) => key.#context;
  }

  private constructor(context: NativeContext, ref: NativeKeyRef, info: TpmPublic, preferred?: JwsAlgorithm) {
    const { publicKey, algorithms } = describeKey(info);
    this.#context = context;
    this.#ref = ref;
    this.#prepared = context.prepareKey(ref);
    this.publicKey = publicKey;
    this.attributes = decodeAttributes(info.attributes);
    this.algorithms = Object.freeze(algorithms);
    this.algorithm = preferred && algorithms.includes(preferred) ? preferred : algorithms[0]!;
    this.handle = 'handle' in ref ? ref.handle : undefined;
    this.pcrs = ref.policy && { bank: 'sha256', indexes: [...ref.policy.indexes] };
    this.#authPolicy = info.authPolicy;
  }

  /**
   * Whether the key's PCR policy would authorise it now: the policy over the PCRs'
   * current values, computed by the TPM in a trial session (no signing, no lockout
   * count), against the key's authPolicy. True for a key without a PCR policy.
   */
  async policyHolds(): Promise<boolean> {
    const policy = this.#ref.policy;
    if (!policy) return true;
    const now = await this.#context.policyDigest(policy);
    return now.length === this.#authPolicy.length && timingSafeEqual(now, this.#authPolicy);
  }

  /**
   * The key as a "TSS2 PRIVATE KEY" PEM (loadable by tpm2-openssl): the TPM-wrapped
   * blobs and the parent, nothing usable outside this TPM. Throws ERR_INVALID_ARGUMENT
   * for a persistent key, which is named by its handle instead.
   */
  toPem(): string {
    const ref = this.#ref;
    if ('handle' in ref) {
      throw invalidArgument('a persistent key has no key file; refer to it as handle:0x...');
    }
    const emptyAuth = !ref.auth || ref.auth.length === 0;
    return encodeKeyFile({
      parent: ref.parent,
      public: ref.public,
      private: ref.private,
      emptyAuth,
      policy: this.pcrs ? policyCommands(this.pcrs, ref.policy!.authValue) : [],
    });
  }

  /** A self-signed X.509 PEM certificate for this key, signed inside the TPM. */
  async certificate(options: CertificateOptions): Promise<string> {
    // The X.509 structures are a large module tree: loaded only by those who make one.
    const { selfSignedCertificate } = await import('./certificate.js');
    return selfSignedCertificate(this, options);
  }

  /**
   * A PKCS#10 certification request (PEM) for this key, signed inside the TPM: for a CA to
   * issue the key a certificate (TLS client authentication, X.509 federation).
   */
  async csr(options: CertificationRequestOptions): Promise<string> {
    const { certificationRequest } = await import('./certification-request.js');
    return certificationRequest(this, options);
  }

  /**
   * Signs `data` (hashed here, signed in the TPM) and returns the JWS-form signature.
   * Throws ERR_INVALID_ARGUMENT for an algorithm the key cannot use, and the TPM's
   * codes (ERR_TPM_AUTH_FAIL, ERR_TPM_CLOSED, ...) from the TPM.
   */
  async sign(data: Uint8Array, options: SignOptions = {}): Promise<Uint8Array> {
    if (!(data instanceof Uint8Array)) throw invalidArgument('data must be a Uint8Array');
    const alg = options.alg ?? this.algorithm;
    const info = algorithmInfo(alg);
    if (!info || !this.algorithms.includes(info.alg)) {
      throw invalidArgument(`this key signs ${this.algorithms.join(', ')}; ${String(alg)} is not one of them`);
    }
    if (!this.attributes.userWithAuth && !this.pcrs) {
      throw new TpmJwtError(
        'ERR_TPM_POLICY_FAIL',
        'this key is authorised only by its policy: open it with the pcrs it was made with',
      );
    }
    // A restricted key signs only what the TPM hashed itself (it checks the ticket).
    if (this.attributes.restricted) return this.#context.signMessage(this.#prepared, data, info.tpm.signScheme);
    const digest = createHash(info.hash).update(data).digest();
    return this.#context.sign(this.#prepared, digest, info.tpm.signScheme);
  }
}
