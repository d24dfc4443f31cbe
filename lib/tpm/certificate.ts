/**
 * X.509 certificates whose signature a key makes (in the TPM, for a TPM key): the
 * self-signed one `gcloud iam service-accounts keys upload` takes to register a TPM key,
 * and the end-entity certificates an enrollment server's CA issues.
 * The structures come from @peculiar/asn1-x509; only the signature is ours.
 */
import { createHash, randomBytes } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extensions,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
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

/** The certificate's subject side: its name, public key, and what it may be used for. */
export interface CertificateSubject {
  name: Name;
  publicKeyInfo: SubjectPublicKeyInfo;
  /** Subject alternative names, as the request asked for them. */
  altNames?: GeneralName[];
  /** Extended key usage OIDs (for example id-kp-clientAuth); none when absent. */
  extendedKeyUsage?: string[];
}

/** Who signs the certificate: its key, its name, and its key identifier (the AKI). */
export interface CertificateIssuer {
  key: X509Key;
  name: Name;
  keyIdentifier?: ArrayBuffer;
}

/**
 * A PEM end-entity certificate (v3, random serial, not a CA, digitalSignature) for
 * `subject`, valid from a minute ago until `notAfter`, signed by `issuer.key` (in the
 * TPM when it is a TPM key).
 */
export async function issueCertificate(
  issuer: CertificateIssuer,
  subject: CertificateSubject,
  notAfter: Date,
): Promise<string> {
  const algorithm = signatureAlgorithm(issuer.key);
  const keyId = createHash('sha1').update(new Uint8Array(subject.publicKeyInfo.subjectPublicKey)).digest();
  const extensions = [
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature)),
    extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId)),
  ];
  if (issuer.keyIdentifier !== undefined) {
    const aki = new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuer.keyIdentifier) });
    extensions.push(extension(id_ce_authorityKeyIdentifier, false, aki));
  }
  if (subject.altNames !== undefined && subject.altNames.length > 0) {
    extensions.push(extension(id_ce_subjectAltName, false, new SubjectAlternativeName(subject.altNames)));
  }
  if (subject.extendedKeyUsage !== undefined) {
    extensions.push(extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage(subject.extendedKeyUsage)));
  }
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serialNumber()).buffer,
    signature: algorithm,
    issuer: issuer.name,
    subject: subject.name,
    validity: new Validity({ notBefore: new Date(Date.now() - 60_000), notAfter }),
    subjectPublicKeyInfo: subject.publicKeyInfo,
    extensions: new Extensions(extensions),
  });
  const certificate = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: algorithm,
    signatureValue: await x509Signature(issuer.key, new Uint8Array(AsnConvert.serialize(tbs))),
  });
  return pem('CERTIFICATE', new Uint8Array(AsnConvert.serialize(certificate)));
}

/** A PEM certificate for `key`, signed by `key`. Throws ERR_INVALID_ARGUMENT for bad options. */
export async function selfSignedCertificate(key: X509Key, options: CertificateOptions): Promise<string> {
  if (typeof options?.subject !== 'string' || options.subject === '') {
    throw invalidArgument('subject must be a non-empty string');
  }
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw invalidArgument('days must be 1 to 36500');
  const name = commonName(options.subject);
  return issueCertificate(
    { key, name },
    { name, publicKeyInfo: subjectPublicKeyInfo(key) },
    new Date(Date.now() + days * 86_400_000),
  );
}
