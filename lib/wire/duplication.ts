/**
 * The outer duplication wrapper of TPM 2.0 Part 1 (23.3.2), as tpm2_import makes it:
 * a fresh seed only the parent can recover, a key and an HMAC key derived from it,
 * and the sensitive area encrypted and bound to the object's Name. What the TPM
 * unwraps in TPM2_Import; the private key never reaches the TPM in clear.
 */
import {
  createCipheriv,
  createECDH,
  createHash,
  createHmac,
  publicEncrypt,
  randomBytes,
  constants,
  type KeyObject,
} from 'node:crypto';

import { hashByName, type CurveInfo, type HashInfo } from '../algorithms.js';

/** A TPM2B: a 16-bit big-endian size, then the bytes. */
export function tpm2b(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(2 + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  out.set(bytes, 2);
  return out;
}

const u32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value, 0);
  return out;
};

/** A TPM label: the text and its terminating zero byte. */
const label = (text: string) => Buffer.from(`${text}\0`, 'latin1');

/** KDFa (SP 800-108 counter mode with HMAC), Part 1 11.4.10.2. */
function kdfa(
  hash: string,
  key: Uint8Array,
  use: string,
  contextU: Uint8Array,
  contextV: Uint8Array,
  bits: number,
): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 1, have = 0; have * 8 < bits; counter++) {
    const block = createHmac(hash, key)
      .update(u32(counter))
      .update(label(use))
      .update(contextU)
      .update(contextV)
      .update(u32(bits))
      .digest();
    blocks.push(block);
    have += block.length;
  }
  return Buffer.concat(blocks).subarray(0, bits / 8);
}

/** KDFe (SP 800-56A concatenation KDF), Part 1 11.4.10.3. */
function kdfe(hash: string, z: Uint8Array, use: string, partyU: Uint8Array, partyV: Uint8Array, bits: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 1, have = 0; have * 8 < bits; counter++) {
    const block = createHash(hash)
      .update(u32(counter))
      .update(z)
      .update(label(use))
      .update(partyU)
      .update(partyV)
      .digest();
    blocks.push(block);
    have += block.length;
  }
  return Buffer.concat(blocks).subarray(0, bits / 8);
}

/** The parent's (or the EK's) public key, as the wrapper needs it; ECC coordinates at full width. */
export type WrappingParent =
  { type: 'ecc'; curve: CurveInfo; x: Uint8Array; y: Uint8Array } | { type: 'rsa'; publicKey: KeyObject };

/**
 * What sets one outer wrapper apart from another: the seed's label (DUPLICATE for
 * TPM2_Import, IDENTITY for TPM2_ActivateCredential), and the parent's name algorithm
 * and AES key size, which derive the keys.
 */
export interface WrapParameters {
  label: 'DUPLICATE' | 'IDENTITY';
  hash: HashInfo;
  aesBits: 128 | 256;
}

interface OuterWrap {
  /** With its size: the integrity HMAC and the encrypted data (TPM2B_PRIVATE, or TPM2B_ID_OBJECT). */
  wrapped: Buffer;
  /** The contents of TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the parent. */
  encryptedSeed: Buffer;
}

/** A fresh seed and its encryption to the parent (ECDH + KDFe, or RSA-OAEP), labelled for its use. */
function makeSeed(parent: WrappingParent, p: WrapParameters): { seed: Buffer; encryptedSeed: Buffer } {
  if (parent.type === 'rsa') {
    const seed = randomBytes(p.hash.size);
    const encryptedSeed = publicEncrypt(
      {
        key: parent.publicKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: p.hash.node,
        oaepLabel: label(p.label),
      },
      seed,
    );
    return { seed, encryptedSeed };
  }
  const ephemeral = createECDH(parent.curve.node);
  const point = ephemeral.generateKeys(); // 04 || x || y
  const x = point.subarray(1, 1 + parent.curve.size);
  const y = point.subarray(1 + parent.curve.size);
  const z = ephemeral.computeSecret(Buffer.concat([Buffer.of(4), parent.x, parent.y]));
  const seed = kdfe(p.hash.node, z, p.label, x, parent.x, p.hash.size * 8);
  z.fill(0);
  return { seed, encryptedSeed: Buffer.concat([tpm2b(x), tpm2b(y)]) };
}

/**
 * The outer wrapper of Part 1 (23.3.2, and 24.4 for credentials): `plain` encrypted with
 * AES-CFB under a key derived from a fresh seed and `name` (the Name of the object it is
 * bound to), with an HMAC over it and the Name; the seed encrypted to `parent`.
 */
export function outerWrap(plain: Uint8Array, name: Uint8Array, parent: WrappingParent, p: WrapParameters): OuterWrap {
  const { seed, encryptedSeed } = makeSeed(parent, p);
  const symKey = kdfa(p.hash.node, seed, 'STORAGE', name, Buffer.alloc(0), p.aesBits);
  const cipher = createCipheriv(`aes-${p.aesBits}-cfb`, symKey, Buffer.alloc(16));
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  const hmacKey = kdfa(p.hash.node, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), p.hash.size * 8);
  const integrity = createHmac(p.hash.node, hmacKey).update(encrypted).update(name).digest();
  for (const secret of [seed, symKey, hmacKey]) secret.fill(0);
  return { wrapped: tpm2b(Buffer.concat([tpm2b(integrity), encrypted])), encryptedSeed };
}

interface Duplicate {
  /** TPM2B_PRIVATE: the integrity HMAC and the encrypted sensitive area. */
  duplicate: Buffer;
  /** The contents of TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the parent. */
  inSymSeed: Buffer;
}

/** The storage parents tpm-jwt imports under: SHA-256 name algorithm, AES-128-CFB. */
const IMPORT: WrapParameters = { label: 'DUPLICATE', hash: hashByName('sha256'), aesBits: 128 };

/**
 * Wraps a plaintext TPM2B_SENSITIVE for a storage parent with AES-128-CFB and a
 * SHA-256 name algorithm (the templates tpm-jwt uses). `name` is the object's Name.
 */
export function wrapForImport(sensitive: Uint8Array, name: Uint8Array, parent: WrappingParent): Duplicate {
  const { wrapped, encryptedSeed } = outerWrap(sensitive, name, parent, IMPORT);
  return { duplicate: wrapped, inSymSeed: encryptedSeed };
}
