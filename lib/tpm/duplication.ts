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

import type { CurveInfo } from '../algorithms.js';

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
export function kdfa(
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
export function kdfe(
  hash: string,
  z: Uint8Array,
  use: string,
  partyU: Uint8Array,
  partyV: Uint8Array,
  bits: number,
): Buffer {
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

/** The parent's public key, as the wrapper needs it. */
export type WrappingParent =
  { type: 'ecc'; curve: CurveInfo; x: Uint8Array; y: Uint8Array } | { type: 'rsa'; publicKey: KeyObject };

export interface Duplicate {
  /** TPM2B_PRIVATE: the integrity HMAC and the encrypted sensitive area. */
  duplicate: Buffer;
  /** The contents of TPM2B_ENCRYPTED_SECRET: the seed, encrypted to the parent. */
  inSymSeed: Buffer;
}

/** A fresh seed and its encryption to the parent (ECDH + KDFe, or RSA-OAEP). */
function makeSeed(parent: WrappingParent): { seed: Buffer; inSymSeed: Buffer } {
  if (parent.type === 'rsa') {
    const seed = randomBytes(32);
    const inSymSeed = publicEncrypt(
      {
        key: parent.publicKey,
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: 'sha256',
        oaepLabel: label('DUPLICATE'),
      },
      seed,
    );
    return { seed, inSymSeed };
  }
  const ephemeral = createECDH(parent.curve.node);
  ephemeral.generateKeys();
  const point = ephemeral.getPublicKey(); // 04 || x || y
  const x = point.subarray(1, 1 + parent.curve.size);
  const y = point.subarray(1 + parent.curve.size);
  const z = ephemeral.computeSecret(Buffer.concat([Buffer.of(4), parent.x, parent.y]));
  const seed = kdfe('sha256', z, 'DUPLICATE', x, parent.x, 256);
  return { seed, inSymSeed: Buffer.concat([tpm2b(x), tpm2b(y)]) };
}

/**
 * Wraps a plaintext TPM2B_SENSITIVE for a storage parent with AES-128-CFB and a
 * SHA-256 name algorithm (the templates tpm-jwt uses). `name` is the object's Name.
 */
export function wrapForImport(sensitive: Uint8Array, name: Uint8Array, parent: WrappingParent): Duplicate {
  const { seed, inSymSeed } = makeSeed(parent);
  const symKey = kdfa('sha256', seed, 'STORAGE', name, Buffer.alloc(0), 128);
  const cipher = createCipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const encrypted = Buffer.concat([cipher.update(sensitive), cipher.final()]);
  const hmacKey = kdfa('sha256', seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256);
  const integrity = createHmac('sha256', hmacKey).update(encrypted).update(name).digest();
  seed.fill(0);
  symKey.fill(0);
  hmacKey.fill(0);
  return { duplicate: tpm2b(Buffer.concat([tpm2b(integrity), encrypted])), inSymSeed };
}
