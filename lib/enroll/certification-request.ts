/**
 * A PKCS#10 certification request as the enrollment server reads it: parsed, its
 * self-signature verified (it proves the requester holds the key), and what it asks
 * for: the subject, the public key, the subject alternative names.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import {
  Extensions,
  GeneralName,
  id_ce_subjectAltName,
  Name,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';

import { ENROLLMENT_REFUSED } from './refusal.js';

/** PKCS#9 extensionRequest. */
const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/** The signature algorithms a request may be signed with, and their hash. */
const SIGNATURE_HASHES: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': 'sha256', // sha256WithRSAEncryption
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256', // ecdsa-with-SHA256
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/** The largest request read: a real one is well under 2 KB. */
const MAX_REQUEST_PEM = 16 * 1024;

export interface ReadRequest {
  /** The request as it came, PEM. */
  pem: string;
  subject: Name;
  publicKeyInfo: SubjectPublicKeyInfo;
  publicKey: KeyObject;
  altNames: GeneralName[];
  /** The OIDs of every extension the request asks for (subjectAltName among them). */
  extensions: string[];
}

/**
 * The request in `pem`, its signature verified with its own key. Throws
 * ERR_ENROLLMENT_REFUSED naming what is wrong: not one PEM request, an algorithm outside
 * RSA PKCS#1 v1.5 and ECDSA with SHA-2, a signature that does not verify.
 */
export function readCertificationRequest(pem: unknown): ReadRequest {
  if (typeof pem !== 'string' || pem.length > MAX_REQUEST_PEM) throw ENROLLMENT_REFUSED('csr must be PEM text');
  const body =
    /^-----BEGIN CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE REQUEST-----\s*$/.exec(
      pem.trim() + '\n',
    );
  if (!body) throw ENROLLMENT_REFUSED('csr is not one PEM CERTIFICATE REQUEST');
  let request: CertificationRequest;
  let publicKey: KeyObject;
  try {
    request = AsnConvert.parse(Buffer.from(body[1]!, 'base64'), CertificationRequest);
    publicKey = createPublicKey({
      key: Buffer.from(AsnConvert.serialize(request.certificationRequestInfo.subjectPKInfo)),
      format: 'der',
      type: 'spki',
    });
  } catch (err) {
    throw ENROLLMENT_REFUSED(`csr does not decode: ${(err as Error).message}`);
  }
  const info = request.certificationRequestInfo;
  const hash = SIGNATURE_HASHES[request.signatureAlgorithm.algorithm];
  if (hash === undefined) throw ENROLLMENT_REFUSED(`csr signature algorithm ${request.signatureAlgorithm.algorithm}`);
  const signed = Buffer.from(AsnConvert.serialize(info));
  if (!verify(hash, signed, publicKey, Buffer.from(request.signature))) {
    throw ENROLLMENT_REFUSED('the csr signature does not verify with its key');
  }
  const altNames: GeneralName[] = [];
  const extensions: string[] = [];
  try {
    for (const attribute of info.attributes) {
      if (attribute.type !== ID_EXTENSION_REQUEST) continue;
      for (const value of attribute.values) {
        for (const ext of AsnConvert.parse(value, Extensions)) {
          extensions.push(ext.extnID);
          if (ext.extnID === id_ce_subjectAltName) {
            altNames.push(...AsnConvert.parse(ext.extnValue, SubjectAlternativeName));
          }
        }
      }
    }
  } catch (err) {
    throw ENROLLMENT_REFUSED(`csr extension request does not decode: ${(err as Error).message}`);
  }
  return { pem, subject: info.subject, publicKeyInfo: info.subjectPKInfo, publicKey, altNames, extensions };
}
