/**
 * The documents of key attestation, as JSON: what the device sends (the attestation,
 * the activation response), what the verifier sends back (the activation challenge) and
 * what it keeps to check the answer (the expectation). Binary TPM structures are base64;
 * certificates PEM. The device side (lib/attest/device.ts) writes them and the verifier
 * reads them: one vocabulary, the two sides' shared wire format.
 */
import { createHash } from 'node:crypto';

import { hexBytes } from '../encoding.js';
import { invalidArgument } from '../errors.js';

export const ATTESTATION_FORMAT = 'tpm-jwt-attestation/1';
export const CHALLENGE_FORMAT = 'tpm-jwt-activation-challenge/1';
export const RESPONSE_FORMAT = 'tpm-jwt-activation-response/1';
export const EXPECTED_FORMAT = 'tpm-jwt-activation-expected/1';

/** An EK certificate as the TPM keeps it: the NV index it was read from, and the PEM. */
export interface EkCertificate {
  /** The NV index, `0x01c00002` style. */
  index: string;
  pem: string;
}

/** What `tpm-jwt attest` writes: a key certified by an AK, and the TPM's EK certificates. */
export interface AttestationDocument {
  format: typeof ATTESTATION_FORMAT;
  /** The key id the qualifying data binds (unless a nonce was used): default the RFC 7638 thumbprint. */
  kid: string;
  /** The service account the qualifying data binds, when one was given. */
  email?: string;
  key: {
    /** TPM2B_PUBLIC of the certified key. */
    public: string;
  };
  certify: {
    /** TPMS_ATTEST (TPM_ST_ATTEST_CERTIFY), the bytes the signature covers. */
    attest: string;
    /** TPMT_SIGNATURE by the AK. */
    signature: string;
  };
  ak: {
    /** TPM2B_PUBLIC of the AK. */
    public: string;
    /** Where the AK is persisted, when it is. */
    handle?: string;
    /** The AK certificate a platform keeps in NV (GCE Shielded VM), PEM. */
    certificate?: string;
  };
  ek: {
    /** RSA and ECC EK certificates from the TPM's NV. */
    certificates: EkCertificate[];
    /** Intermediate CA certificates: from NV (0x01c00100 on) and given with --ek-chain. */
    chain: string[];
  };
  /** NV indices the device skipped (unwritten, read-locked, readable only by policy), and why. */
  notes?: string[];
}

/** What the verifier sends the device: a credential only that TPM can open. It holds no answer. */
export interface ActivationChallenge {
  format: typeof CHALLENGE_FORMAT;
  ak: {
    /** The AK's Name, hex: the TPM opens the credential only for it. */
    name: string;
    type: 'rsa' | 'ecc';
    /** Where the attestation said the AK is persisted: a hint the device checks against its own choice. */
    handle?: string;
  };
  ek: {
    /** The NV index of the EK certificate the credential is encrypted to. */
    index: string;
    /** That EK's public key, SPKI DER base64. */
    publicKey: string;
  };
  /** TPM2B_ID_OBJECT, with its size. */
  credentialBlob: string;
  /** TPM2B_ENCRYPTED_SECRET, with its size. */
  encryptedSecret: string;
}

/**
 * What the verifier keeps (never sent to the device) to check the answer to its
 * challenge: which AK and EK the credential was made for, and the secret's digest.
 */
export interface ActivationExpectation {
  format: typeof EXPECTED_FORMAT;
  /** The AK's Name, hex. */
  akName: string;
  /** The EK the credential is encrypted to: SPKI DER, base64. */
  ekPublicKey: string;
  /** SHA-256 of the secret, base64. */
  secretDigest: string;
}

/** What the device answers: the secret its TPM recovered. */
export interface ActivationResponse {
  format: typeof RESPONSE_FORMAT;
  secret: string;
}

/** Sets the binding's hash apart from every other SHA-256 a TPM key might certify. */
const KEY_BINDING_LABEL = 'tpm-jwt attestation key binding v2\0';

/**
 * The qualifying data of an attestation made without a nonce: SHA-256 of a label and
 * the JSON array [kid, email or null], so the AK's signature vouches that this key is the
 * one with this kid for this service account. JSON keeps the fields apart: no kid and
 * email pair encodes like another, and no email differs from an empty one.
 */
export function keyBinding(kid: string, email: string | undefined): Buffer {
  return createHash('sha256')
    .update(KEY_BINDING_LABEL, 'utf8')
    .update(JSON.stringify([kid, email ?? null]), 'utf8')
    .digest();
}

/**
 * A nonce from hex or bytes: 1 to 64 bytes (up to a SHA-512 digest; the addon's
 * kMaxQualifyingData is the same). Throws ERR_INVALID_ARGUMENT.
 */
export function parseNonce(nonce: string | Uint8Array): Buffer {
  let bytes: Buffer | undefined;
  if (typeof nonce === 'string') {
    bytes = hexBytes(nonce);
  } else if (nonce instanceof Uint8Array) {
    bytes = Buffer.from(nonce);
  }
  if (!bytes || bytes.length < 1 || bytes.length > 64) {
    throw invalidArgument('nonce must be 1 to 64 bytes, given as hex or bytes');
  }
  return bytes;
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';

/**
 * The PEM certificate blocks in `text`, in order (not parsed): each END with the last
 * BEGIN before it. One pass, each character looked at a bounded number of times (a
 * lazy regex rescanned the rest of the text at every BEGIN without an END).
 */
export function certificatePems(text: string): string[] {
  const out: string[] = [];
  for (let from = 0; ;) {
    const end = text.indexOf(PEM_END, from);
    if (end < 0) return out;
    // Searched within this stretch only: stretches do not overlap.
    const begin = text.slice(from, end).lastIndexOf(PEM_BEGIN);
    if (begin >= 0) out.push(text.slice(from + begin, end + PEM_END.length));
    from = end + PEM_END.length;
  }
}

/** Base64 of a document field, decoded; anything else is ERR_INVALID_ARGUMENT naming the field. */
export function base64Field(value: unknown, field: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw invalidArgument(`${field} must be base64`);
  }
  return Buffer.from(value, 'base64');
}

/**
 * The most a document may weigh as JSON: a real attestation (a key, an AK, two EK
 * certificates and a short chain) is a few KB. Anyone can send one to a server, and
 * the work a verifier does grows with what it is given.
 */
export const MAX_DOCUMENT_SIZE = 256 * 1024;

/** The size of a document as JSON text; ERR_INVALID_ARGUMENT past MAX_DOCUMENT_SIZE. */
function checkSize(value: unknown, what: string): void {
  let size: number;
  try {
    size = typeof value === 'string' ? value.length : (JSON.stringify(value)?.length ?? 0);
  } catch {
    throw invalidArgument(`the ${what} is not JSON data`);
  }
  if (size > MAX_DOCUMENT_SIZE) {
    throw invalidArgument(`the ${what} is ${size} characters, more than the ${MAX_DOCUMENT_SIZE} accepted`);
  }
}

/** A document given as JSON text or an object, checked for its size and format tag. */
export function readDocument<T extends { format: string }>(value: unknown, format: T['format'], what: string): T {
  checkSize(value, what);
  let doc = value;
  if (typeof value === 'string') {
    try {
      doc = JSON.parse(value);
    } catch {
      throw invalidArgument(`the ${what} is not JSON`);
    }
  }
  if (typeof doc !== 'object' || doc === null || (doc as { format?: unknown }).format !== format) {
    throw invalidArgument(`not a ${what} (format "${format}")`);
  }
  return doc as T;
}
