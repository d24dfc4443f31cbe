/**
 * The CA an enrollment server issues device certificates with: a CA certificate and its
 * key, the key either a PEM private key (a file) or a TPM key (the server's own signer:
 * the CA key is hardware-bound too). Certificates are for TLS client authentication
 * (X.509 federation, mTLS), end-entity, for the requested key only.
 */
import { createPrivateKey, createPublicKey, sign, type KeyObject, type X509Certificate } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectKeyIdentifier, Name, SubjectKeyIdentifier } from '@peculiar/asn1-x509';

import type { JwsAlgorithm } from '../algorithms.js';
import { parseCertificates } from '../attest/certificates.js';
import { invalidArgument } from '../errors.js';
import { issueCertificate } from '../tpm/certificate.js';
import type { X509Key } from '../tpm/x509.js';
import type { ReadRequest } from './certification-request.js';

/** id-kp-clientAuth. */
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/** What the server asks its CA for, the request already checked against the attestation and policy. */
export interface IssueRequest {
  request: ReadRequest;
  /** The subject the policy chose instead of the request's; absent: the request's. */
  subject?: Name;
  /** Seconds from now; capped at the CA certificate's own end. */
  lifetimeSeconds: number;
}

/** What a CA answers: the device certificate and the certificates to send after it (the issuing CA first), PEM. */
export interface IssuedCertificate {
  certificate: string;
  chain: string;
}

export interface CertificateAuthority {
  issue(request: IssueRequest): Promise<IssuedCertificate>;
}

export interface CertificateAuthorityOptions {
  /** The CA's certificate, PEM (the issuer of every certificate). */
  certificate: string;
  /** Its key: a PEM private key, or a key that signs in a TPM (a TpmKey). */
  key: string | X509Key;
  /** Certificates above the CA certificate, PEM, sent with each issued certificate; default none. */
  chain?: string;
}

/** A private key as the X.509 signing code takes a TPM key: RSA PKCS#1 v1.5 or ECDSA P-256, SHA-256. */
function softwareKey(pem: string): X509Key {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw invalidArgument(`the CA key is not a PEM private key: ${(err as Error).message}`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const alg: JwsAlgorithm | undefined =
    key.asymmetricKeyType === 'rsa' ? 'RS256' : curve === 'prime256v1' ? 'ES256' : undefined;
  if (alg === undefined) throw invalidArgument('the CA key must be RSA or EC P-256');
  return {
    publicKey: createPublicKey(key),
    algorithms: [alg],
    // JWS form (r || s for ECDSA), as a TPM key signs: x509Signature makes it DER.
    sign: async (data) => sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }),
  };
}

/**
 * The CA `options` describe. Throws ERR_INVALID_ARGUMENT for a certificate that is not
 * one, a key that is not its key, or a certificate that is not a CA's.
 */
export function certificateAuthority(options: CertificateAuthorityOptions): CertificateAuthority {
  const [caCertificate] = parseCertificates(options.certificate ?? '', 'the CA certificate');
  if (!caCertificate) throw invalidArgument('the CA certificate must be a PEM certificate');
  if (!caCertificate.ca) throw invalidArgument('the CA certificate is not a CA certificate (basicConstraints CA)');
  const key = typeof options.key === 'string' ? softwareKey(options.key) : options.key;
  if (!caCertificate.publicKey.equals(key.publicKey))
    throw invalidArgument("the CA key is not the CA certificate's key");
  const parsed = AsnConvert.parse(caCertificate.raw, Certificate).tbsCertificate;
  const ski = parsed.extensions?.find((e) => e.extnID === id_ce_subjectKeyIdentifier);
  const keyIdentifier = ski && AsnConvert.parse(ski.extnValue, SubjectKeyIdentifier).buffer;
  const caEnd = Date.parse(caCertificate.validTo);
  if (!(caEnd > Date.now())) throw invalidArgument(`the CA certificate expired on ${caCertificate.validTo}`);
  const chain = [caCertificate, ...parseCertificates(options.chain ?? '', 'the CA chain')]
    .map((c: X509Certificate) => c.toString())
    .join('');
  return {
    async issue({ request, subject, lifetimeSeconds }) {
      const notAfter = new Date(Math.min(Date.now() + lifetimeSeconds * 1000, caEnd));
      const certificate = await issueCertificate(
        { key, name: parsed.subject, ...(keyIdentifier !== undefined && { keyIdentifier }) },
        {
          name: subject ?? request.subject,
          publicKeyInfo: request.publicKeyInfo,
          altNames: request.altNames,
          extendedKeyUsage: [CLIENT_AUTH],
        },
        notAfter,
      );
      return { certificate, chain };
    },
  };
}
