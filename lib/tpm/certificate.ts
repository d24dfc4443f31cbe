/**
 * A self-signed X.509 certificate whose signature the TPM makes: what
 * `gcloud iam service-accounts keys upload` takes to register a TPM key.
 * The structures come from @peculiar/asn1-x509; only the signature is ours.
 */
import { createHash, randomBytes } from 'node:crypto';

import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  Extension,
  Extensions,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';

import { algorithmInfo, type AlgorithmInfo, type JwsAlgorithm, type X509SignatureInfo } from '../algorithms.js';
import { pem } from '../encoding.js';
import { invalidArgument, TpmJwtError } from '../errors.js';

const OID_COMMON_NAME = '2.5.4.3';
const DER_NULL = new Uint8Array([0x05, 0x00]).buffer;

function algorithmIdentifier(x509: X509SignatureInfo): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm: x509.oid, ...(x509.nullParameters && { parameters: DER_NULL }) });
}

export interface CertificateOptions {
  /** The subject (and issuer) common name. */
  subject: string;
  /** Days of validity from now; default 365. */
  days?: number;
}

/** What the certificate needs from a key: its public key and a way to sign. */
interface CertificateKey {
  readonly publicKey: import('node:crypto').KeyObject;
  readonly algorithms: readonly JwsAlgorithm[];
  sign(data: Uint8Array, options: { alg: JwsAlgorithm }): Promise<Uint8Array>;
}

/** JWS r || s to the DER ECDSA-Sig-Value X.509 wants. */
function ecdsaDer(signature: Uint8Array): ArrayBuffer {
  const half = signature.length / 2;
  const integer = (bytes: Uint8Array) =>
    asn1js.Integer.fromBigInt(BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`));
  const value = new asn1js.Sequence({
    value: [integer(signature.subarray(0, half)), integer(signature.subarray(half))],
  });
  return value.toBER();
}

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** A PEM certificate for `key`, signed by `key`. Throws ERR_INVALID_ARGUMENT for bad options. */
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

export async function selfSignedCertificate(key: CertificateKey, options: CertificateOptions): Promise<string> {
  if (typeof options?.subject !== 'string' || options.subject === '') {
    throw invalidArgument('subject must be a non-empty string');
  }
  const days = options.days ?? 365;
  if (!Number.isInteger(days) || days < 1 || days > 36500) throw invalidArgument('days must be 1 to 36500');
  const info = key.algorithms.map((a) => algorithmInfo(a)).find((i): i is AlgorithmInfo => i?.x509 !== undefined);
  if (info === undefined) {
    throw new TpmJwtError(
      'ERR_TPM_UNSUPPORTED',
      `no certificate signature algorithm for a key that signs ${key.algorithms.join(', ')}`,
    );
  }
  const x509 = info.x509!;
  const signatureAlgorithm = algorithmIdentifier(x509);

  const spkiDer = key.publicKey.export({ type: 'spki', format: 'der' });
  const spki = AsnConvert.parse(spkiDer, SubjectPublicKeyInfo);
  const name = new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: OID_COMMON_NAME, value: new AttributeValue({ utf8String: options.subject }) }),
    ]),
  ]);
  const serial = serialNumber();
  const now = Date.now();
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: new Uint8Array(serial).buffer,
    signature: signatureAlgorithm,
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
  const tbsDer = new Uint8Array(AsnConvert.serialize(tbs));
  const signature = await key.sign(tbsDer, { alg: info.alg });
  const certificate = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm,
    signatureValue: x509.derSignature ? ecdsaDer(signature) : new Uint8Array(signature).buffer,
  });
  return pem('CERTIFICATE', new Uint8Array(AsnConvert.serialize(certificate)));
}
