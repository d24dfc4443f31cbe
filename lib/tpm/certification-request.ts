/**
 * A PKCS#10 certification request (RFC 2986) for a TPM key, signed in the TPM: what a CA
 * (or an enrollment server) takes to issue the key a certificate, for TLS client
 * authentication and X.509 Workload Identity Federation.
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { Attribute, Extensions, id_ce_subjectAltName, SubjectAlternativeName } from '@peculiar/asn1-x509';

import { pem } from '../encoding.js';
import { invalidArgument } from '../errors.js';
import {
  distinguishedName,
  extension,
  generalName,
  signatureAlgorithm,
  subjectPublicKeyInfo,
  x509Signature,
  type X509Key,
} from './x509.js';

/** PKCS#9 extensionRequest: the extensions the request asks the CA to put in the certificate. */
const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

export interface CertificationRequestOptions {
  /** The subject's distinguished name, RFC 4514 text: `CN=device-42` or `CN=device-42,O=Example`. */
  subject: string;
  /** Subject alternative names: `dns:NAME`, `uri:URI`, `ip:ADDRESS`. */
  subjectAltNames?: readonly string[];
}

/** A PEM CERTIFICATE REQUEST for `key`, signed by `key`. Throws ERR_INVALID_ARGUMENT for bad options. */
export async function certificationRequest(key: X509Key, options: CertificationRequestOptions): Promise<string> {
  const subject = distinguishedName(options?.subject);
  const altNames = options.subjectAltNames ?? [];
  if (!Array.isArray(altNames)) throw invalidArgument('subjectAltNames must be an array of strings');
  const attributes = new Attributes();
  if (altNames.length > 0) {
    const san = extension(id_ce_subjectAltName, false, new SubjectAlternativeName(altNames.map(generalName)));
    const extensions = AsnConvert.serialize(new Extensions([san]));
    attributes.push(new Attribute({ type: ID_EXTENSION_REQUEST, values: [extensions] }));
  }
  const info = new CertificationRequestInfo({ subject, subjectPKInfo: subjectPublicKeyInfo(key), attributes });
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: signatureAlgorithm(key),
    signature: await x509Signature(key, new Uint8Array(AsnConvert.serialize(info))),
  });
  return pem('CERTIFICATE REQUEST', new Uint8Array(AsnConvert.serialize(request)));
}
