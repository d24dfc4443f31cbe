/**
 * The TPM 2.0 structures tpm-jwt reads (Part 2: TPMT_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE),
 * from their wire bytes in TypeScript: the one decoder of public areas, for the verifier
 * (no TPM, no addon) and the device side alike. Anything malformed is
 * ERR_INVALID_ARGUMENT naming the structure, unless the caller names another code.
 */
import { createHash } from 'node:crypto';

import { hashByTpmId, TPM2_ALG, type HashInfo } from '../algorithms.js';
import { invalidArgument, TpmJwtError, type TpmJwtErrorCode } from '../errors.js';

/** TPM_GENERATED_VALUE: the magic only the TPM writes at the start of a TPMS_ATTEST. */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_CERTIFY. */
export const TPM_ST_ATTEST_CERTIFY = 0x8017;
/** TPM_RH_ENDORSEMENT, the hierarchy an AK is a primary of. */
export const TPM_RH_ENDORSEMENT = 0x4000000b;

/** Largest sizes of the TPM2Bs read here (Part 2): a verifier refuses more than a TPM could send. */
const MAX = {
  /** TPM2B_DIGEST: a SHA-512 digest. */
  digest: 64,
  /** TPM2B_NAME and TPM2B_DATA: a TPMT_HA, a hash algorithm and a SHA-512 digest. */
  name: 66,
  /** TPM2B_PUBLIC_KEY_RSA and an RSA signature: RSA 4096. */
  rsa: 512,
  /** TPM2B_ECC_PARAMETER: a P-521 coordinate. */
  ecc: 66,
  /** TPM2B_PUBLIC's TPMT_PUBLIC. */
  publicArea: 1024,
} as const;

/** A hash algorithm strong enough for attestation: SHA-256 or larger. */
export function strongHash(alg: number): HashInfo | undefined {
  const hash = hashByTpmId(alg);
  return hash && hash.size >= 32 ? hash : undefined;
}

/** The name of a TPM hash algorithm for a message: "SHA-1 (0x0004)", or its id when unknown. */
export function hashLabel(alg: number): string {
  const hash = hashByTpmId(alg);
  const id = `0x${alg.toString(16).padStart(4, '0')}`;
  return hash ? `${hash.node.toUpperCase().replace('SHA', 'SHA-')} (${id})` : `hash algorithm ${id}`;
}

/** Reads big-endian TPM fields in order; running past the end fails with `code`. */
class Reader {
  readonly bytes: Buffer;
  readonly what: string;
  readonly code: TpmJwtErrorCode;
  #offset = 0;

  constructor(bytes: Buffer, what: string, code: TpmJwtErrorCode = 'ERR_INVALID_ARGUMENT') {
    this.bytes = bytes;
    this.what = what;
    this.code = code;
  }

  fail(message: string): TpmJwtError {
    return new TpmJwtError(this.code, message);
  }

  #take(size: number): Buffer {
    if (this.#offset + size > this.bytes.length) throw this.fail(`${this.what} is truncated`);
    const out = this.bytes.subarray(this.#offset, this.#offset + size);
    this.#offset += size;
    return out;
  }

  u8 = (): number => this.#take(1).readUInt8(0);
  u16 = (): number => this.#take(2).readUInt16BE(0);
  u32 = (): number => this.#take(4).readUInt32BE(0);
  u64 = (): bigint => this.#take(8).readBigUInt64BE(0);
  /** A TPM2B: a 16-bit size, then that many bytes, at most `max` (the TPM2B's buffer size). */
  sized = (max: number, field: string): Buffer => {
    const size = this.u16();
    if (size > max) throw this.fail(`${this.what}: ${field} is ${size} bytes, more than a TPM sends (${max})`);
    return this.#take(size);
  };

  end(): void {
    if (this.#offset !== this.bytes.length) throw this.fail(`${this.what} has trailing bytes`);
  }
}

/** A TPMT_PUBLIC of an RSA or ECC key, decoded. */
export interface TpmPublic {
  /** The TPMT_PUBLIC bytes, which the object's Name is the digest of. */
  readonly area: Buffer;
  /** TPM2_ALG_RSA or TPM2_ALG_ECC. */
  readonly type: number;
  readonly nameAlg: number;
  /** TPMA_OBJECT. */
  readonly attributes: number;
  /** The key's fixed TPMI_ALG_SIG_SCHEME and its hash; TPM2_ALG_NULL (0x10) when open. */
  readonly scheme: number;
  readonly schemeHash: number;
  /** The digest of the policy that authorises the key; empty when it has none. */
  readonly authPolicy: Buffer;
  /** As the TPM stores it: an exponent of 0 means 65537. */
  readonly rsa?: { bits: number; exponent: number; modulus: Buffer };
  readonly ecc?: { curve: number; x: Buffer; y: Buffer };
}

/** The codes parsePublic fails with. */
export interface PublicAreaCodes {
  /** Not one well-formed structure (truncated, trailing bytes, a field larger than a TPM sends). */
  readonly malformed: TpmJwtErrorCode;
  /** Well-formed so far, but an object of another type than RSA or ECC. */
  readonly otherType: TpmJwtErrorCode;
}

/** A verifier's codes: a public area in a document is an argument. */
const ARGUMENT_CODES: PublicAreaCodes = { malformed: 'ERR_INVALID_ARGUMENT', otherType: 'ERR_INVALID_ARGUMENT' };

const TPM_ALG_RSAES = 0x0015;
const TPM_ALG_ECDAA = 0x001a;

/** The scheme fields a TPMT_*_SCHEME has: its algorithm and, unless NULL, a hash. */
function scheme(r: Reader): { scheme: number; schemeHash: number } {
  const alg = r.u16();
  // NULL and RSAES have no details; every other scheme (RSASSA, RSAPSS, OAEP, ECDSA, ...)
  // a hash, and ECDAA a count after it.
  if (alg === TPM2_ALG.NULL || alg === TPM_ALG_RSAES) return { scheme: alg, schemeHash: 0 };
  const schemeHash = r.u16();
  if (alg === TPM_ALG_ECDAA) r.u16();
  return { scheme: alg, schemeHash };
}

function symmetric(r: Reader): void {
  if (r.u16() !== TPM2_ALG.NULL) {
    r.u16(); // keyBits
    r.u16(); // mode
  }
}

/**
 * Decodes a TPM2B_PUBLIC (with its size) or, with `sized` false, a bare TPMT_PUBLIC, of an
 * RSA or ECC key. Throws ERR_INVALID_ARGUMENT naming `what`, or the `codes` given.
 */
export function parsePublic(
  bytes: Uint8Array,
  what = 'the public area',
  sized = true,
  codes: PublicAreaCodes = ARGUMENT_CODES,
): TpmPublic {
  let area: Buffer = Buffer.from(bytes);
  if (sized) {
    const outer = new Reader(area, what, codes.malformed);
    area = outer.sized(MAX.publicArea, 'the TPMT_PUBLIC');
    outer.end();
  }
  const r = new Reader(area, what, codes.malformed);
  const type = r.u16();
  const nameAlg = r.u16();
  const attributes = r.u32();
  const authPolicy = r.sized(MAX.digest, 'authPolicy');
  let info: TpmPublic;
  if (type === TPM2_ALG.RSA) {
    symmetric(r);
    const s = scheme(r);
    const bits = r.u16();
    const exponent = r.u32();
    const modulus = r.sized(MAX.rsa, 'the modulus');
    info = { area, type, nameAlg, attributes, authPolicy, ...s, rsa: { bits, exponent, modulus } };
  } else if (type === TPM2_ALG.ECC) {
    symmetric(r);
    const s = scheme(r);
    const curve = r.u16();
    if (r.u16() !== TPM2_ALG.NULL) r.u16(); // kdf and its hash
    const x = r.sized(MAX.ecc, 'x');
    const y = r.sized(MAX.ecc, 'y');
    info = { area, type, nameAlg, attributes, authPolicy, ...s, ecc: { curve, x, y } };
  } else {
    throw new TpmJwtError(codes.otherType, `${what} is neither an RSA nor an ECC key (type 0x${type.toString(16)})`);
  }
  r.end();
  return info;
}

/** The object's name algorithm; ERR_INVALID_ARGUMENT for one tpm-jwt cannot compute (SM3, SHA3, ...). */
function nameHash(pub: TpmPublic): HashInfo {
  const hash = hashByTpmId(pub.nameAlg);
  if (!hash) throw invalidArgument(`its name algorithm (${hashLabel(pub.nameAlg)}) is not one tpm-jwt computes`);
  return hash;
}

const u16 = (value: number) => Buffer.of(value >> 8, value & 0xff);

/**
 * The object's Name: its nameAlg, then the digest of its TPMT_PUBLIC in that algorithm.
 * Throws ERR_INVALID_ARGUMENT for a name algorithm tpm-jwt does not compute.
 */
export function objectName(pub: TpmPublic): Buffer {
  const hash = nameHash(pub);
  return Buffer.concat([u16(pub.nameAlg), createHash(hash.node).update(pub.area).digest()]);
}

/**
 * The Qualified Name of a primary of `hierarchy` (Part 1, 16): the digest of the
 * hierarchy's handle and the object's Name, in the object's nameAlg. Throws as objectName.
 */
export function primaryQualifiedName(pub: TpmPublic, hierarchy: number): Buffer {
  const hash = nameHash(pub);
  const handle = Buffer.alloc(4);
  handle.writeUInt32BE(hierarchy);
  return Buffer.concat([u16(pub.nameAlg), createHash(hash.node).update(handle).update(objectName(pub)).digest()]);
}

/** A TPMS_ATTEST of type TPM_ST_ATTEST_CERTIFY, decoded. */
export interface TpmAttest {
  readonly magic: number;
  readonly type: number;
  readonly qualifiedSigner: Buffer;
  /** The caller's qualifying data, as the TPM signed it. */
  readonly extraData: Buffer;
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
  readonly firmwareVersion: bigint;
  /** For TPM_ST_ATTEST_CERTIFY: the certified object's Name and Qualified Name. */
  readonly certified?: { name: Buffer; qualifiedName: Buffer };
}

/** Decodes a TPMS_ATTEST; only a certification's is read to its end. Throws ERR_INVALID_ARGUMENT. */
export function parseAttest(bytes: Uint8Array): TpmAttest {
  const r = new Reader(Buffer.from(bytes), 'the TPMS_ATTEST');
  const magic = r.u32();
  const type = r.u16();
  const qualifiedSigner = r.sized(MAX.name, 'qualifiedSigner');
  const extraData = r.sized(MAX.name, 'extraData');
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8() !== 0;
  const firmwareVersion = r.u64();
  const common = { magic, type, qualifiedSigner, extraData, clock, resetCount, restartCount, safe, firmwareVersion };
  if (type !== TPM_ST_ATTEST_CERTIFY) return common;
  const certified = {
    name: r.sized(MAX.name, 'the certified Name'),
    qualifiedName: r.sized(MAX.name, 'its Qualified Name'),
  };
  r.end();
  return { ...common, certified };
}

/** A TPMT_SIGNATURE, decoded: RSASSA/RSAPSS bytes, or ECDSA r and s. */
export interface TpmSignature {
  readonly sigAlg: number;
  readonly hash: number;
  readonly rsa?: Buffer;
  readonly ecdsa?: { r: Buffer; s: Buffer };
}

/** Decodes a TPMT_SIGNATURE of RSASSA, RSAPSS or ECDSA. Throws ERR_INVALID_ARGUMENT. */
export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r = new Reader(Buffer.from(bytes), 'the TPMT_SIGNATURE');
  const sigAlg = r.u16();
  let out: TpmSignature;
  if (sigAlg === TPM2_ALG.RSASSA || sigAlg === TPM2_ALG.RSAPSS) {
    out = { sigAlg, hash: r.u16(), rsa: r.sized(MAX.rsa, 'the signature') };
  } else if (sigAlg === TPM2_ALG.ECDSA) {
    out = { sigAlg, hash: r.u16(), ecdsa: { r: r.sized(MAX.ecc, 'r'), s: r.sized(MAX.ecc, 's') } };
  } else {
    throw invalidArgument(`unsupported signature algorithm 0x${sigAlg.toString(16)}`);
  }
  r.end();
  return out;
}
