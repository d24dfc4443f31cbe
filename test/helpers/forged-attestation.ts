/**
 * A software-forged attestation: every TPM structure (the AK's and the key's public
 * areas, the TPMS_ATTEST, the TPMT_SIGNATURE) built and signed in node:crypto, with EK
 * and AK certificates from throwaway CAs: what a TPM and its vendor would hand over,
 * made without either. With the fixture's own roots it passes every check, which is the
 * point: each option then spoils one thing, and a test shows which check catches it.
 * `reviewersForgery` is the review's forge.ts: one leaf used as both the EK and the AK
 * certificate, a self-declared AK over a software key.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';

import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';

import { keyBinding, type AttestationDocument } from '../../lib/wire/attestation-format.js';

export const ALG = { RSA: 0x0001, SHA1: 0x0004, SHA256: 0x000b, SM3: 0x0012, NULL: 0x0010, ECDSA: 0x0018, ECC: 0x0023 };
/** TPMA_OBJECT bits. */
export const ATTR = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
};
export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_CERTIFY = 0x8017;
export const TPM_ST_ATTEST_QUOTE = 0x8018;
const TPM_RH_ENDORSEMENT = 0x4000000b;
const TPM_RH_OWNER = 0x40000001;

const AK_ATTRIBUTES =
  ATTR.restricted | ATTR.sign | ATTR.fixedTPM | ATTR.fixedParent | ATTR.sensitiveDataOrigin | ATTR.userWithAuth;
const KEY_ATTRIBUTES = ATTR.sign | ATTR.fixedTPM | ATTR.fixedParent | ATTR.sensitiveDataOrigin | ATTR.userWithAuth;

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
/** The keys, made once: P-256 everywhere keeps the fixture fast. */
const KEYS = { ekRoot: ec(), ekIntermediate: ec(), ek: ec(), akRoot: ec(), ak: ec(), key: ec() };

const u16 = (v: number) => Buffer.of(v >> 8, v & 0xff);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const tpm2b = (b: Uint8Array) => Buffer.concat([u16(b.length), b]);
const nodeHash = (alg: number) => (alg === ALG.SHA1 ? 'sha1' : 'sha256');

/** A TPMT_PUBLIC of an ECC P-256 key, with a scheme (ECDSA and its hash) or NULL. */
function eccPublic(key: KeyObject, attributes: number, nameAlg: number, scheme?: { hash: number }): Buffer {
  const jwk = key.export({ format: 'jwk' });
  return Buffer.concat([
    u16(ALG.ECC),
    u16(nameAlg),
    u32(attributes),
    tpm2b(Buffer.alloc(0)),
    u16(ALG.NULL), // symmetric
    scheme ? Buffer.concat([u16(ALG.ECDSA), u16(scheme.hash)]) : u16(ALG.NULL),
    u16(0x0003), // NIST P-256
    u16(ALG.NULL), // kdf
    tpm2b(Buffer.from(jwk.x!, 'base64url')),
    tpm2b(Buffer.from(jwk.y!, 'base64url')),
  ]);
}

const rsaKeys = new Map<number, KeyObject>();

/** A TPMT_PUBLIC of an RSA key of `bits` (made once per size), scheme NULL; `keyBits` as the area states it. */
function rsaPublic(bits: number, keyBits: number, attributes: number, nameAlg: number): Buffer {
  if (!rsaKeys.has(bits)) rsaKeys.set(bits, generateKeyPairSync('rsa', { modulusLength: bits }).publicKey);
  const jwk = rsaKeys.get(bits)!.export({ format: 'jwk' });
  return Buffer.concat([
    u16(ALG.RSA),
    u16(nameAlg),
    u32(attributes),
    tpm2b(Buffer.alloc(0)),
    u16(ALG.NULL), // symmetric
    u16(ALG.NULL), // scheme
    u16(keyBits),
    u32(0), // the default exponent, 65537
    tpm2b(Buffer.from(jwk.n!, 'base64url')),
  ]);
}

/** A Name; an algorithm node:crypto has no name for (SM3) is hashed with SHA-256 under its id. */
const nameOf = (area: Buffer, alg: number) =>
  Buffer.concat([u16(alg), createHash(nodeHash(alg)).update(area).digest()]);

function qualifiedName(hierarchy: number, name: Buffer, alg: number): Buffer {
  return Buffer.concat([u16(alg), createHash(nodeHash(alg)).update(u32(hierarchy)).update(name).digest()]);
}

/** What a certificate says about itself. */
export interface CertificateOptions {
  subject?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** basicConstraints cA. */
  ca?: boolean;
  /** Extended key usage OIDs; null: none. */
  eku?: string[] | null;
  /** KeyUsageFlags; null: none. */
  keyUsage?: number | null;
  /** A TPM manufacturer in the subject alternative name (as TCG EK certificates have). */
  tpmManufacturer?: boolean;
  /** No extensions at all (an X.509 v1 certificate, like forge.ts's). */
  bare?: boolean;
  /** basicConstraints pathLenConstraint (with ca). */
  pathLen?: number;
  /** An extension of this OID, marked critical. */
  criticalExtension?: string;
}

const DAY = 86_400_000;
const ECDSA_SHA256 = new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' });

const commonName = (cn: string) =>
  new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ]);

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** A PEM certificate for `publicKey`, signed by `signer` in the name of `issuer`. */
export function issueCertificate(
  publicKey: KeyObject,
  issuer: string,
  signer: KeyObject,
  o: CertificateOptions,
): string {
  const subject = o.subject ?? 'CN';
  const extensions: Extension[] = [];
  if (!o.bare) {
    extensions.push(
      extension(
        id_ce_basicConstraints,
        true,
        new BasicConstraints({ cA: o.ca ?? false, ...(o.pathLen !== undefined && { pathLenConstraint: o.pathLen }) }),
      ),
    );
    if (o.criticalExtension) {
      extensions.push(
        new Extension({ extnID: o.criticalExtension, critical: true, extnValue: new OctetString(Buffer.of(5, 0)) }),
      );
    }
    if (o.keyUsage !== null && o.keyUsage !== undefined) {
      extensions.push(extension(id_ce_keyUsage, true, new KeyUsage(o.keyUsage)));
    }
    if (o.eku) extensions.push(extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage(o.eku)));
    if (o.tpmManufacturer) {
      const attribute = (type: string, text: string) =>
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: text }) }),
        ]);
      const directoryName = new Name([
        attribute('2.23.133.2.1', 'id:00001014'),
        attribute('2.23.133.2.2', 'forge'),
        attribute('2.23.133.2.3', 'id:00000001'),
      ]);
      extensions.push(
        extension(id_ce_subjectAltName, true, new SubjectAlternativeName([new GeneralName({ directoryName })])),
      );
    }
  }
  const serial = randomBytes(12);
  serial[0] = 0x40 | (serial[0]! & 0x3f); // positive, and minimally encoded
  const now = Date.now();
  const tbs = new TBSCertificate({
    version: o.bare ? Version.v1 : Version.v3,
    serialNumber: new Uint8Array(serial).buffer,
    signature: ECDSA_SHA256,
    issuer: commonName(issuer),
    subject: commonName(subject),
    validity: new Validity({
      notBefore: o.notBefore ?? new Date(now - DAY),
      notAfter: o.notAfter ?? new Date(now + 30 * DAY),
    }),
    subjectPublicKeyInfo: AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo),
    ...(extensions.length > 0 && { extensions: new Extensions(extensions) }),
  });
  const signature = sign('sha256', Buffer.from(AsnConvert.serialize(tbs)), signer);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: ECDSA_SHA256,
    signatureValue: new Uint8Array(signature).buffer,
  });
  return new X509Certificate(Buffer.from(AsnConvert.serialize(cert))).toString();
}

export const CA: CertificateOptions = { ca: true, keyUsage: KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign };
/** The device, as the EK and AK certificates both name it (GCE names the instance). */
const DEVICE = 'forged device 42';

export interface ForgeOptions {
  magic?: number;
  type?: number;
  /** Whose Qualified Name the TPMS_ATTEST says signed it: the AK as an endorsement (default) or owner primary. */
  signerHierarchy?: 'endorsement' | 'owner';
  akAttributes?: number;
  keyAttributes?: number;
  akNameAlg?: number;
  keyNameAlg?: number;
  /** The AK's fixed scheme hash (default SHA-256). */
  akSchemeHash?: number;
  /** The hash the certify signature is made with (default the AK's scheme hash). */
  signatureHash?: number;
  kid?: string;
  email?: string;
  ekRoot?: CertificateOptions;
  ekIntermediate?: CertificateOptions;
  ekCertificate?: CertificateOptions;
  akRoot?: CertificateOptions;
  /** The AK certificate; false: none. */
  akCertificate?: CertificateOptions | false;
  /** The certified key as RSA of `bits` instead of ECC P-256, its area stating `keyBits` (default the same). */
  rsaKey?: { bits: number; keyBits?: number };
}

export interface Forged {
  doc: AttestationDocument;
  /** The EK root, PEM. */
  roots: string;
  /** The AK root, PEM. */
  akRoots: string;
}

/** A forged attestation; with no options one that passes every check under its roots. */
export function forgeAttestation(o: ForgeOptions = {}): Forged {
  const akNameAlg = o.akNameAlg ?? ALG.SHA256;
  const keyNameAlg = o.keyNameAlg ?? ALG.SHA256;
  const akSchemeHash = o.akSchemeHash ?? ALG.SHA256;
  const akArea = eccPublic(KEYS.ak.publicKey, o.akAttributes ?? AK_ATTRIBUTES, akNameAlg, { hash: akSchemeHash });
  const keyAttributes = o.keyAttributes ?? KEY_ATTRIBUTES;
  const keyArea = o.rsaKey
    ? rsaPublic(o.rsaKey.bits, o.rsaKey.keyBits ?? o.rsaKey.bits, keyAttributes, keyNameAlg)
    : eccPublic(KEYS.key.publicKey, keyAttributes, keyNameAlg);
  const kid = o.kid ?? 'forged-kid';
  const akName = nameOf(akArea, akNameAlg);
  const keyName = nameOf(keyArea, keyNameAlg);
  const hierarchy = o.signerHierarchy === 'owner' ? TPM_RH_OWNER : TPM_RH_ENDORSEMENT;
  const attest = Buffer.concat([
    u32(o.magic ?? TPM_GENERATED_VALUE),
    u16(o.type ?? TPM_ST_ATTEST_CERTIFY),
    tpm2b(qualifiedName(hierarchy, akName, akNameAlg)),
    tpm2b(keyBinding(kid, o.email)),
    Buffer.alloc(8), // clock
    u32(1), // resetCount
    u32(0), // restartCount
    Buffer.of(1), // safe
    Buffer.alloc(8), // firmwareVersion
    tpm2b(keyName),
    tpm2b(qualifiedName(TPM_RH_OWNER, keyName, keyNameAlg)),
  ]);
  const signatureHash = o.signatureHash ?? akSchemeHash;
  const rs = sign(nodeHash(signatureHash), attest, { key: KEYS.ak.privateKey, dsaEncoding: 'ieee-p1363' });
  const signature = Buffer.concat([
    u16(ALG.ECDSA),
    u16(signatureHash),
    tpm2b(rs.subarray(0, 32)),
    tpm2b(rs.subarray(32)),
  ]);

  const ekRoot = issueCertificate(KEYS.ekRoot.publicKey, 'forged EK root', KEYS.ekRoot.privateKey, {
    ...CA,
    subject: 'forged EK root',
    ...o.ekRoot,
  });
  const ekIntermediate = issueCertificate(KEYS.ekIntermediate.publicKey, 'forged EK root', KEYS.ekRoot.privateKey, {
    ...CA,
    subject: 'forged EK intermediate',
    ...o.ekIntermediate,
  });
  const ekCertificate = issueCertificate(KEYS.ek.publicKey, 'forged EK intermediate', KEYS.ekIntermediate.privateKey, {
    subject: DEVICE,
    eku: ['2.23.133.8.1'],
    keyUsage: KeyUsageFlags.keyAgreement,
    tpmManufacturer: true,
    ...o.ekCertificate,
  });
  const akRoot = issueCertificate(KEYS.akRoot.publicKey, 'forged AK root', KEYS.akRoot.privateKey, {
    ...CA,
    subject: 'forged AK root',
    ...o.akRoot,
  });
  const akCertificate =
    o.akCertificate === false
      ? undefined
      : issueCertificate(KEYS.ak.publicKey, 'forged AK root', KEYS.akRoot.privateKey, {
          subject: DEVICE,
          eku: ['2.23.133.8.3'],
          keyUsage: KeyUsageFlags.digitalSignature,
          ...o.akCertificate,
        });
  return {
    doc: {
      format: 'tpm-jwt-attestation/1',
      kid,
      ...(o.email !== undefined && { email: o.email }),
      key: { public: tpm2b(keyArea).toString('base64') },
      certify: { attest: attest.toString('base64'), signature: signature.toString('base64') },
      ak: { public: tpm2b(akArea).toString('base64'), ...(akCertificate && { certificate: akCertificate }) },
      ek: { certificates: [{ index: '0x01c0000a', pem: ekCertificate }], chain: [ekIntermediate] },
    },
    roots: ekRoot,
    akRoots: akRoot,
  };
}

/**
 * The review's forge.ts: one bare (v1) leaf over the AK's software key, issued by a
 * throwaway root, serving as the EK certificate and as the AK certificate.
 */
export function reviewersForgery(): Forged {
  const forged = forgeAttestation({ akCertificate: false });
  const root = issueCertificate(KEYS.ekRoot.publicKey, 'SomeRoot', KEYS.ekRoot.privateKey, {
    ...CA,
    subject: 'SomeRoot',
  });
  const leaf = issueCertificate(KEYS.ak.publicKey, 'SomeRoot', KEYS.ekRoot.privateKey, {
    subject: 'anything',
    bare: true,
  });
  return {
    doc: {
      ...forged.doc,
      ak: { ...forged.doc.ak, certificate: leaf },
      ek: { certificates: [{ index: '0x01c00002', pem: leaf }], chain: [] },
    },
    roots: root,
    akRoots: root,
  };
}
