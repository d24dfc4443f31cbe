/**
 * The TPM 2.0 structures an attestation carries (Part 2: TPMT_PUBLIC, TPMS_ATTEST,
 * TPMT_SIGNATURE), read from their wire bytes in TypeScript, so a verifier needs no
 * TPM and no addon. Anything malformed is ERR_INVALID_ARGUMENT naming the structure.
 */
import { createHash } from 'node:crypto';

import { TPM2_ALG } from '../algorithms.js';
import { invalidArgument } from '../errors.js';
import type { NativePublicInfo } from '../native.js';

/** TPM_GENERATED_VALUE: the magic only the TPM writes at the start of a TPMS_ATTEST. */
export const TPM_GENERATED_VALUE = 0xff544347;
/** TPM_ST_ATTEST_CERTIFY. */
export const TPM_ST_ATTEST_CERTIFY = 0x8017;
/** TPM_RH_ENDORSEMENT, the hierarchy an AK is a primary of. */
export const TPM_RH_ENDORSEMENT = 0x4000000b;

/** node:crypto's name for a TPM hash algorithm; undefined for one tpm-jwt does not check. */
export function hashName(alg: number): 'sha1' | 'sha256' | 'sha384' | 'sha512' | undefined {
  return ({ 0x0004: 'sha1', 0x000b: 'sha256', 0x000c: 'sha384', 0x000d: 'sha512' } as const)[alg];
}

/** Reads big-endian TPM fields in order; running past the end is ERR_INVALID_ARGUMENT. */
class Reader {
  readonly bytes: Buffer;
  readonly what: string;
  #offset = 0;

  constructor(bytes: Buffer, what: string) {
    this.bytes = bytes;
    this.what = what;
  }

  #take(size: number): Buffer {
    if (this.#offset + size > this.bytes.length) throw invalidArgument(`${this.what} is truncated`);
    const out = this.bytes.subarray(this.#offset, this.#offset + size);
    this.#offset += size;
    return out;
  }

  u8 = (): number => this.#take(1).readUInt8(0);
  u16 = (): number => this.#take(2).readUInt16BE(0);
  u32 = (): number => this.#take(4).readUInt32BE(0);
  u64 = (): bigint => this.#take(8).readBigUInt64BE(0);
  /** A TPM2B: a 16-bit size, then that many bytes. */
  sized = (): Buffer => this.#take(this.u16());

  end(): void {
    if (this.#offset !== this.bytes.length) throw invalidArgument(`${this.what} has trailing bytes`);
  }
}

/** A TPMT_PUBLIC, decoded: the NativePublicInfo fields plus what a verifier checks. */
export interface TpmPublic extends NativePublicInfo {
  /** The TPMT_PUBLIC bytes, which the object's Name is the digest of. */
  readonly area: Buffer;
  readonly authPolicy: Buffer;
}

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

/** Decodes a TPM2B_PUBLIC (with its size) or, with `sized` false, a bare TPMT_PUBLIC. */
export function parsePublic(bytes: Uint8Array, what = 'the public area', sized = true): TpmPublic {
  let area: Buffer = Buffer.from(bytes);
  if (sized) {
    const outer = new Reader(area, what);
    area = outer.sized();
    outer.end();
  }
  const r = new Reader(area, what);
  const type = r.u16();
  const nameAlg = r.u16();
  const attributes = r.u32();
  const authPolicy = r.sized();
  let info: TpmPublic;
  if (type === TPM2_ALG.RSA) {
    symmetric(r);
    const s = scheme(r);
    const bits = r.u16();
    const exponent = r.u32();
    const modulus = r.sized();
    info = { area, type, nameAlg, attributes, authPolicy, ...s, rsa: { bits, exponent, modulus } };
  } else if (type === TPM2_ALG.ECC) {
    symmetric(r);
    const s = scheme(r);
    const curve = r.u16();
    if (r.u16() !== TPM2_ALG.NULL) r.u16(); // kdf and its hash
    const x = r.sized();
    const y = r.sized();
    info = { area, type, nameAlg, attributes, authPolicy, ...s, ecc: { curve, x, y } };
  } else {
    throw invalidArgument(`${what} is neither an RSA nor an ECC key (type 0x${type.toString(16)})`);
  }
  r.end();
  return info;
}

/** The object's Name: its nameAlg, then the digest of its TPMT_PUBLIC in that algorithm. */
export function objectName(pub: TpmPublic): Buffer {
  const hash = hashName(pub.nameAlg);
  if (!hash) throw invalidArgument(`unsupported name algorithm 0x${pub.nameAlg.toString(16)}`);
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(pub.nameAlg);
  return Buffer.concat([alg, createHash(hash).update(pub.area).digest()]);
}

/**
 * The Qualified Name of a primary of `hierarchy` (Part 1, 16): the digest of the
 * hierarchy's handle and the object's Name, in the object's nameAlg.
 */
export function primaryQualifiedName(pub: TpmPublic, hierarchy: number): Buffer {
  const hash = hashName(pub.nameAlg)!;
  const handle = Buffer.alloc(4);
  handle.writeUInt32BE(hierarchy);
  const alg = Buffer.alloc(2);
  alg.writeUInt16BE(pub.nameAlg);
  return Buffer.concat([alg, createHash(hash).update(handle).update(objectName(pub)).digest()]);
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

export function parseAttest(bytes: Uint8Array): TpmAttest {
  const r = new Reader(Buffer.from(bytes), 'the TPMS_ATTEST');
  const magic = r.u32();
  const type = r.u16();
  const qualifiedSigner = r.sized();
  const extraData = r.sized();
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8() !== 0;
  const firmwareVersion = r.u64();
  const common = { magic, type, qualifiedSigner, extraData, clock, resetCount, restartCount, safe, firmwareVersion };
  if (type !== TPM_ST_ATTEST_CERTIFY) return common;
  const certified = { name: r.sized(), qualifiedName: r.sized() };
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

export function parseSignature(bytes: Uint8Array): TpmSignature {
  const r = new Reader(Buffer.from(bytes), 'the TPMT_SIGNATURE');
  const sigAlg = r.u16();
  let out: TpmSignature;
  if (sigAlg === TPM2_ALG.RSASSA || sigAlg === TPM2_ALG.RSAPSS) {
    out = { sigAlg, hash: r.u16(), rsa: r.sized() };
  } else if (sigAlg === TPM2_ALG.ECDSA) {
    out = { sigAlg, hash: r.u16(), ecdsa: { r: r.sized(), s: r.sized() } };
  } else {
    throw invalidArgument(`unsupported signature algorithm 0x${sigAlg.toString(16)}`);
  }
  r.end();
  return out;
}
