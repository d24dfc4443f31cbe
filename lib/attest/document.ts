/**
 * An attestation document as the verifier reads it: its shape checked, its fields
 * decoded, and which of its EK certificates are EK certificates that chain to the
 * verifier's roots. Binary TPM structures stay bytes here (verify.ts decides what a
 * malformed one means).
 */
import type { KeyObject, X509Certificate } from 'node:crypto';

import { invalidArgument } from '../errors.js';
import {
  ATTESTATION_FORMAT,
  base64Field,
  certificatePems,
  readDocument,
  type AttestationDocument,
} from '../wire/attestation-format.js';
import { chainToRoots, describe, ekCertificateProblem, parseCertificates } from './certificates.js';

export interface ReadAttestation {
  readonly doc: AttestationDocument;
  readonly keyPublic: Buffer;
  readonly attest: Buffer;
  readonly signature: Buffer;
  readonly akPublic: Buffer;
  readonly ekCertificates: readonly { index: string; cert: X509Certificate }[];
  readonly chain: readonly X509Certificate[];
  readonly akCertificate: X509Certificate | undefined;
}

function onlyCertificate(pem: unknown, what: string): X509Certificate {
  if (typeof pem !== 'string') throw invalidArgument(`${what} must be PEM text`);
  const [cert, ...more] = parseCertificates(pem, what);
  if (!cert || more.length > 0) throw invalidArgument(`${what} must hold one certificate`);
  return cert;
}

/**
 * The most certificates a document may carry, EK, chain and AK together: a TPM has two
 * EK certificates and vendors' chains one to three intermediates. Every certificate is a
 * candidate at every step of a chain search, so the search's cost grows with the count.
 */
export const MAX_DOCUMENT_CERTIFICATES = 16;

/** The document's certificate PEM fields, counted before any is parsed. */
function checkCertificateCount(doc: AttestationDocument): void {
  const texts = [...doc.ek.certificates.map((entry) => entry?.pem), ...doc.ek.chain, doc.ak?.certificate].filter(
    (text): text is string => typeof text === 'string',
  );
  const count = texts.reduce((sum, text) => sum + certificatePems(text).length, 0);
  if (count > MAX_DOCUMENT_CERTIFICATES) {
    throw invalidArgument(`the attestation carries ${count} certificates, more than ${MAX_DOCUMENT_CERTIFICATES}`);
  }
}

/** Documents decodeOnce made: each frozen all the way down, so its decoding holds. */
const decoded = new WeakMap<object, ReadAttestation>();

/** The deepest a document's JSON may nest: a real one is four levels deep. */
const MAX_DEPTH = 16;

/**
 * `value` frozen all the way down and decoded now, so that every later readAttestation of
 * it (verifyAttestation, createActivationChallenge, a server's own checks) takes that
 * decoding instead of parsing its certificates again. A value that is not an object is
 * returned as it is; one nested deeper than any document is ERR_INVALID_ARGUMENT.
 */
export function decodeOnce<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  const stack: [unknown, number][] = [[value, 0]];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [node, depth] = next;
    if (typeof node !== 'object' || node === null || Object.isFrozen(node)) continue;
    if (depth > MAX_DEPTH) throw invalidArgument(`the attestation nests deeper than ${MAX_DEPTH} levels`);
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
    Object.freeze(node);
  }
  if (!decoded.has(value)) decoded.set(value, decode(value));
  return value;
}

/** The document (JSON text or object) decoded; a malformed one is ERR_INVALID_ARGUMENT. */
export function readAttestation(value: unknown): ReadAttestation {
  return (typeof value === 'object' && value !== null && decoded.get(value)) || decode(value);
}

function decode(value: unknown): ReadAttestation {
  const doc = readDocument<AttestationDocument>(value, ATTESTATION_FORMAT, 'tpm-jwt attestation');
  if (typeof doc.kid !== 'string') throw invalidArgument('kid must be a string');
  if (doc.email !== undefined && typeof doc.email !== 'string') throw invalidArgument('email must be a string');
  if (!Array.isArray(doc.ek?.certificates) || !Array.isArray(doc.ek.chain)) {
    throw invalidArgument('ek must hold certificates and chain lists');
  }
  checkCertificateCount(doc);
  return {
    doc,
    keyPublic: base64Field(doc.key?.public, 'key.public'),
    attest: base64Field(doc.certify?.attest, 'certify.attest'),
    signature: base64Field(doc.certify?.signature, 'certify.signature'),
    akPublic: base64Field(doc.ak?.public, 'ak.public'),
    ekCertificates: doc.ek.certificates.map((entry, i) => ({
      index: typeof entry?.index === 'string' ? entry.index : '?',
      cert: onlyCertificate(entry?.pem, `ek.certificates[${i}]`),
    })),
    chain: doc.ek.chain.flatMap((pem, i) => {
      if (typeof pem !== 'string') throw invalidArgument(`ek.chain[${i}] must be PEM text`);
      return parseCertificates(pem, `ek.chain[${i}]`);
    }),
    akCertificate:
      doc.ak?.certificate === undefined ? undefined : onlyCertificate(doc.ak.certificate, 'ak.certificate'),
  };
}

/** An EK certificate of the document that is one (see ekCertificateProblem) and chains to the roots. */
export interface TrustedEk {
  readonly index: string;
  readonly cert: X509Certificate;
  readonly publicKey: KeyObject;
  /** 'RSA 2048 EK certificate (NV 0x01c00002) CN=... chains to CN=...'. */
  readonly summary: string;
}

/** One line naming an EK certificate's key. */
function keyLabel(key: KeyObject): string {
  return key.asymmetricKeyType === 'rsa'
    ? `RSA ${key.asymmetricKeyDetails?.modulusLength}`
    : `ECC ${key.asymmetricKeyDetails?.namedCurve}`;
}

/** The document's EK certificates that are EK certificates and chain to `roots`, and why each other one fails. */
export function trustedEks(
  read: ReadAttestation,
  roots: readonly X509Certificate[],
  at: Date,
): { trusted: TrustedEk[]; problems: string[] } {
  const trusted: TrustedEk[] = [];
  const problems: string[] = [];
  for (const { index, cert } of read.ekCertificates) {
    const notEk = ekCertificateProblem(cert);
    if (notEk) {
      problems.push(`EK certificate (NV ${index}) ${describe(cert)} is not an EK certificate: ${notEk}`);
      continue;
    }
    const result = chainToRoots(cert, read.chain, roots, at);
    let publicKey: KeyObject;
    try {
      publicKey = cert.publicKey;
    } catch (err) {
      problems.push(`EK certificate (NV ${index}): its public key does not parse: ${(err as Error).message}`);
      continue;
    }
    if (result.ok) {
      const what = `${keyLabel(publicKey)} EK certificate (NV ${index}) ${describe(cert)}`;
      trusted.push({ index, cert, publicKey, summary: `${what} chains to ${describe(result.root)}` });
    } else {
      // The usual cause: the TPM's NV holds the EK certificate but not its intermediate CA.
      problems.push(
        `EK certificate (NV ${index}): ${result.why} (if its issuer is an intermediate CA, the device sends it ` +
          "with the attestation: attestKey's ekChain, attest --ek-chain; otherwise the EK maker's root is not " +
          'among the roots)',
      );
    }
  }
  return { trusted, problems };
}
