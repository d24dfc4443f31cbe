/**
 * The one table of JWS algorithms: everything below and above it looks algorithms up
 * here rather than enumerating them.
 */
import { constants } from 'node:crypto';

// TPM 2.0 algorithm and curve identifiers (TCG Algorithm Registry).
const TPM2_ALG_RSA = 0x0001;
const TPM2_ALG_SHA256 = 0x000b;
const TPM2_ALG_RSASSA = 0x0014;
const TPM2_ALG_RSAPSS = 0x0016;
const TPM2_ALG_ECDSA = 0x0018;
const TPM2_ALG_ECC = 0x0023;
const TPM2_ECC_NIST_P256 = 0x0003;

export type JwsAlgorithm = 'RS256' | 'PS256' | 'ES256';
export type KeyType = 'RSA' | 'EC';

/** node:crypto sign/verify options that make its signatures JWS-form for the alg. */
export interface NodeSignOptions {
  readonly padding?: number;
  readonly saltLength?: number;
  readonly dsaEncoding?: 'ieee-p1363';
}

export interface AlgorithmInfo {
  readonly alg: JwsAlgorithm;
  readonly keyType: KeyType;
  /** node:crypto digest name. */
  readonly hash: 'sha256';
  /** JWK curve name, for EC. */
  readonly curve?: 'P-256';
  readonly node: NodeSignOptions;
  readonly tpm: {
    /** TPMI_ALG_PUBLIC of the key. */
    readonly type: number;
    readonly curve?: number;
    /** The TPM2_Sign scheme: TPMI_ALG_SIG_SCHEME, TPMI_ALG_HASH and, for ECDSA, the
     * bytes per r and s in the JWS signature. */
    readonly signScheme: { readonly scheme: number; readonly hash: number; readonly coordinateSize?: number };
  };
}

const TABLE: Readonly<Record<JwsAlgorithm, AlgorithmInfo>> = {
  RS256: {
    alg: 'RS256',
    keyType: 'RSA',
    hash: 'sha256',
    node: {},
    tpm: { type: TPM2_ALG_RSA, signScheme: { scheme: TPM2_ALG_RSASSA, hash: TPM2_ALG_SHA256 } },
  },
  PS256: {
    alg: 'PS256',
    keyType: 'RSA',
    hash: 'sha256',
    // RFC 7518 3.5: the salt is as long as the digest.
    node: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
    tpm: { type: TPM2_ALG_RSA, signScheme: { scheme: TPM2_ALG_RSAPSS, hash: TPM2_ALG_SHA256 } },
  },
  ES256: {
    alg: 'ES256',
    keyType: 'EC',
    hash: 'sha256',
    curve: 'P-256',
    node: { dsaEncoding: 'ieee-p1363' },
    tpm: {
      type: TPM2_ALG_ECC,
      curve: TPM2_ECC_NIST_P256,
      signScheme: { scheme: TPM2_ALG_ECDSA, hash: TPM2_ALG_SHA256, coordinateSize: 32 },
    },
  },
};

export const ALGORITHMS: readonly JwsAlgorithm[] = Object.freeze(
  Object.keys(TABLE) as JwsAlgorithm[],
);

export function isAlgorithm(value: unknown): value is JwsAlgorithm {
  return typeof value === 'string' && Object.hasOwn(TABLE, value);
}

/** The table row for `alg`; undefined for anything not in the table. */
export function algorithmInfo(alg: string): AlgorithmInfo | undefined {
  return isAlgorithm(alg) ? TABLE[alg] : undefined;
}

/** The algorithms a key of this type (and curve) can sign with, default first. */
export function algorithmsFor(keyType: KeyType, curve?: string): JwsAlgorithm[] {
  return ALGORITHMS.filter((alg) => {
    const info = TABLE[alg];
    return info.keyType === keyType && info.curve === curve;
  });
}
