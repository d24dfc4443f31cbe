/**
 * A self-signed X.509 certificate whose signature the TPM makes: what
 * `gcloud iam service-accounts keys upload` takes to register a TPM key.
 * The structures come from @peculiar/asn1-x509; only the signature is ours.
 */
import { createHash, randomBytes } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  Extensions,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectKeyIdentifier,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';

import { pem } from '../encoding.js';
import { invalidArgument } from '../errors.js';
import {
  commonName,
  extension,
  signatureAlgorithm,
  subjectPublicKeyInfo,
  x509Signature,
  type X509Key,
} from './x509.js';

export interface CertificateOptions {
  /** The subject (and issuer) common name. */
  subject: string;
  /** Days of validity from now; default 365. */
  days?: number;
}

/**
 * 16 random bytes as a positive DER INTEGER's content. The first byte is kept in
 * 0x40..0x7f: below 0x80 (else the INTEGER is negative) and above zero, since a leading
 * zero before a byte below 0x80 is a non-minimal encoding that OpenSSL refuses ("illegal
 * padding"), which a plain clear of the top bit gave one certificate in 256.
 */
export function serialNumber(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  return serial;
}

/** A PEM certificate for `key`, signed by `key`. Throws ERR_INVALID_ARGUMENT for bad options. */
export async function selfSignedCertificate(key: X509Key, options: CertificateOptions): Promise<string> {
  if (typeof options?.subject !== 'string' || options.subject === '') {
    throw invalidArgument('subject must be a non-empty string');
  }
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw invalidArgument('days must be 1 to 36500');
  const algorithm = signatureAlgorithm(key);
  const spki = subjectPublicKeyInfo(key);
  const name = commonName(options.subject);
  const now = Date.now();
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serialNumber()).buffer,
    signature: algorithm,
    issuer: name,
    subject: name,
    validity: new Validity({ notBefore: new Date(now - 60_000), notAfter: new Date(now + days * 86_400_000) }),
    subjectPublicKeyInfo: spki,
    extensions: new Extensions([
      extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
      extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature)),
      extension(
        id_ce_subjectKeyIdentifier,
        false,
        new SubjectKeyIdentifier(createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest()),
      ),
    ]),
  });
  const certificate = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: await x509Signature(key, new Uint8Array(AsnConvert.serialize(tbs))),
  });
  return pem('CERTIFICATE', new Uint8Array(AsnConvert.serialize(certificate)));
}
