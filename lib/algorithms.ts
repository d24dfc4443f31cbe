/**
 * The one table of JWS algorithms, key types and the TPM identifiers behind them:
 * everything below and above it looks algorithms up here rather than enumerating them.
 */
import { constants, type KeyObject } from 'node:crypto';

/** TPM 2.0 algorithm identifiers (TCG Algorithm Registry) that tpm-jwt uses. */
export const TPM2_ALG = Object.freeze({
  RSA: 0x0001,
  SHA1: 0x0004,
  SHA256: 0x000b,
  SHA384: 0x000c,
  SHA512: 0x000d,
  NULL: 0x0010,
  RSASSA: 0x0014,
  RSAPSS: 0x0016,
  ECDSA: 0x0018,
  ECC: 0x0023,
});

export type JwsAlgorithm = 'RS256' | 'PS256' | 'ES256';
type KeyType = 'RSA' | 'EC';

/** RSA modulus sizes a TPM key may have, in bits; the first is the default. */
export const RSA_KEY_SIZES = Object.freeze([2048, 3072] as const);
export type RsaKeySize = (typeof RSA_KEY_SIZES)[number];

/** A TPM hash algorithm by each name it goes by. */
export interface HashInfo {
  /** TPMI_ALG_HASH. */
  readonly tpm: number;
  /** node:crypto's name. */
  readonly node: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  /** Digest bytes. */
  readonly size: number;
}

const HASHES: readonly HashInfo[] = Object.freeze(
  (
    [
      { tpm: TPM2_ALG.SHA1, node: 'sha1', size: 20 },
      { tpm: TPM2_ALG.SHA256, node: 'sha256', size: 32 },
      { tpm: TPM2_ALG.SHA384, node: 'sha384', size: 48 },
      { tpm: TPM2_ALG.SHA512, node: 'sha512', size: 64 },
    ] as const
  ).map((hash) => Object.freeze(hash)),
);

/** The hash a TPMI_ALG_HASH names; undefined for one tpm-jwt does not compute (SM3, SHA3, ...). */
export function hashByTpmId(id: number): HashInfo | undefined {
  return HASHES.find((hash) => hash.tpm === id);
}

/** The hash of a node:crypto name. */
export function hashByName(name: HashInfo['node']): HashInfo {
  return HASHES.find((hash) => hash.node === name)!;
}

/** An elliptic curve by each name it goes by. */
export interface CurveInfo {
  /** JWK `crv`. */
  readonly jwk: 'P-256' | 'P-384' | 'P-521';
  /** node:crypto's (OpenSSL's) name. */
  readonly node: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** TPMI_ECC_CURVE. */
  readonly tpm: number;
  /** Bytes in a coordinate, a private scalar, and each of a signature's r and s. */
  readonly size: number;
  /** The hash of the curve's strength: what ECDSA and the TCG EK templates pair with it. */
  readonly hash: HashInfo['node'];
}

const P256: CurveInfo = Object.freeze({ jwk: 'P-256', node: 'prime256v1', tpm: 0x0003, size: 32, hash: 'sha256' });
/** The curves tpm-jwt signs with. */
const CURVES: readonly CurveInfo[] = [P256];
/** Every curve tpm-jwt meets: the signing ones, and those of EKs (credential activation only). */
const ALL_CURVES: readonly CurveInfo[] = [
  ...CURVES,
  Object.freeze({ jwk: 'P-384', node: 'secp384r1', tpm: 0x0004, size: 48, hash: 'sha384' } as const),
  Object.freeze({ jwk: 'P-521', node: 'secp521r1', tpm: 0x0005, size: 66, hash: 'sha512' } as const),
];

/** Any curve tpm-jwt meets (see ALL_CURVES), by its JWK, node:crypto or TPM name; undefined for others. */
export function anyCurve(name: string | number | undefined): CurveInfo | undefined {
  return ALL_CURVES.find((curve) => curve.jwk === name || curve.node === name || curve.tpm === name);
}

/** node:crypto sign/verify options that make its signatures JWS-form for the alg. */
interface NodeSignOptions {
  readonly padding?: number;
  readonly saltLength?: number;
  readonly dsaEncoding?: 'ieee-p1363';
}

/** How an X.509 certificate names and carries a signature of this algorithm. */
export interface X509SignatureInfo {
  /** The AlgorithmIdentifier's OID. */
  readonly oid: string;
  /** RSA OIDs take NULL parameters (RFC 4055); ECDSA ones none (RFC 5758). */
  readonly nullParameters: boolean;
  /** ECDSA signatures are DER Ecdsa-Sig-Value there, not JWS's r || s. */
  readonly derSignature: boolean;
}

export interface AlgorithmInfo {
  readonly alg: JwsAlgorithm;
  readonly keyType: KeyType;
  /** node:crypto digest name. */
  readonly hash: 'sha256';
  /** The curve, for EC. */
  readonly curve?: CurveInfo;
  readonly node: NodeSignOptions;
  readonly tpm: {
    /** TPMI_ALG_PUBLIC of the key. */
    readonly type: number;
    /** The TPM2_Sign scheme: TPMI_ALG_SIG_SCHEME, TPMI_ALG_HASH and, for ECDSA, the
     * bytes per r and s in the JWS signature. */
    readonly signScheme: { readonly scheme: number; readonly hash: number; readonly coordinateSize?: number };
  };
  /** Absent where tpm-jwt does not put the algorithm in certificates (PS256). */
  readonly x509?: X509SignatureInfo;
}

const TABLE: Readonly<Record<JwsAlgorithm, AlgorithmInfo>> = {
  RS256: {
    alg: 'RS256',
    keyType: 'RSA',
    hash: 'sha256',
    node: {},
    tpm: { type: TPM2_ALG.RSA, signScheme: { scheme: TPM2_ALG.RSASSA, hash: TPM2_ALG.SHA256 } },
    // sha256WithRSAEncryption
    x509: { oid: '1.2.840.113549.1.1.11', nullParameters: true, derSignature: false },
  },
  PS256: {
    alg: 'PS256',
    keyType: 'RSA',
    hash: 'sha256',
    // RFC 7518 3.5: the salt is as long as the digest.
    node: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
    tpm: { type: TPM2_ALG.RSA, signScheme: { scheme: TPM2_ALG.RSAPSS, hash: TPM2_ALG.SHA256 } },
  },
  ES256: {
    alg: 'ES256',
    keyType: 'EC',
    hash: 'sha256',
    curve: P256,
    node: { dsaEncoding: 'ieee-p1363' },
    tpm: {
      type: TPM2_ALG.ECC,
      signScheme: { scheme: TPM2_ALG.ECDSA, hash: TPM2_ALG.SHA256, coordinateSize: P256.size },
    },
    // ecdsa-with-SHA256
    x509: { oid: '1.2.840.10045.4.3.2', nullParameters: false, derSignature: true },
  },
};

export const ALGORITHMS: readonly JwsAlgorithm[] = Object.freeze(Object.keys(TABLE) as JwsAlgorithm[]);

export function isAlgorithm(value: unknown): value is JwsAlgorithm {
  return typeof value === 'string' && Object.hasOwn(TABLE, value);
}

/** The table row for `alg`; undefined for anything not in the table. */
export function algorithmInfo(alg: string): AlgorithmInfo | undefined {
  return isAlgorithm(alg) ? TABLE[alg] : undefined;
}

/** The curve a TPM public area names (TPMI_ECC_CURVE); undefined for unsupported ones. */
export function curveByTpmId(id: number): CurveInfo | undefined {
  return CURVES.find((curve) => curve.tpm === id);
}

/** The algorithms a key of this type (and curve) can sign with, default first. */
function algorithmsFor(keyType: KeyType, curve?: CurveInfo): JwsAlgorithm[] {
  return ALGORITHMS.filter((alg) => TABLE[alg].keyType === keyType && TABLE[alg].curve === curve);
}

/**
 * The algorithms a node:crypto key (public or private) can sign with, default first;
 * empty for a key type or curve tpm-jwt does not sign with.
 */
export function algorithmsForKey(key: KeyObject): JwsAlgorithm[] {
  if (key.asymmetricKeyType === 'rsa') return algorithmsFor('RSA');
  const curve = CURVES.find((c) => c.node === key.asymmetricKeyDetails?.namedCurve);
  return key.asymmetricKeyType === 'ec' && curve ? algorithmsFor('EC', curve) : [];
}

/** A key to create or import, as the addon takes it: TPMI_ALG_PUBLIC, and RSA bits or a TPMI_ECC_CURVE. */
export interface TpmKeySpec {
  type: number;
  bits?: number;
  curve?: number;
}

/** What TPM2_Create needs for a key that signs `info.alg`; `bits` applies to RSA only. */
export function tpmKeySpec(info: AlgorithmInfo, bits: RsaKeySize = RSA_KEY_SIZES[0]): TpmKeySpec {
  return info.curve ? { type: info.tpm.type, curve: info.curve.tpm } : { type: info.tpm.type, bits };
}

export function isRsaKeySize(value: unknown): value is RsaKeySize {
  return (RSA_KEY_SIZES as readonly unknown[]).includes(value);
}
