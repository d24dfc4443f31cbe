/**
 * X.509 for the verifier: certificates from PEM; whether one chains to a trusted root
 * through the intermediates given (signatures, issuer names, validity of every
 * certificate including the root, CA flags); and whether a leaf is what it is used as,
 * an EK or an AK certificate. node:crypto's X509Certificate, and @peculiar/asn1-x509 for
 * the extensions node does not decode.
 */
import { X509Certificate } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
} from '@peculiar/asn1-x509';

import { invalidArgument } from '../errors.js';
import { certificatePems } from '../wire/attestation-format.js';

/** Every certificate in PEM text; throws ERR_INVALID_ARGUMENT for one that does not parse. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  return certificatePems(pem).map((block) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw invalidArgument(`${what}: a certificate does not parse: ${(err as Error).message}`);
    }
  });
}

/** Trust anchors as callers give them: PEM text (one or many), or parsed certificates. */
export type Roots = string | readonly (string | X509Certificate)[];

/** The roots as certificates; none at all is ERR_INVALID_ARGUMENT naming `what`. */
export function rootCertificates(roots: Roots, what = 'roots'): X509Certificate[] {
  const list = typeof roots === 'string' ? [roots] : roots;
  if (!Array.isArray(list)) throw invalidArgument(`${what} must be PEM text or a list of certificates`);
  const out = list.flatMap((root) =>
    root instanceof X509Certificate ? [root] : typeof root === 'string' ? parseCertificates(root, what) : [],
  );
  if (out.length === 0) throw invalidArgument(`${what} holds no certificate`);
  return out;
}

const oneLine = (name: string): string => name.replace(/\n/g, ', ');

/** One line naming a certificate by its subject. */
export const describe = (cert: X509Certificate): string => oneLine(cert.subject) || '(empty subject)';

function inValidity(cert: X509Certificate, at: Date): boolean {
  return new Date(cert.validFrom) <= at && at <= new Date(cert.validTo);
}

const validity = (cert: X509Certificate) => `valid ${cert.validFrom} to ${cert.validTo}`;

/** Whether `issuer` signed `cert` in its name; whether it may issue certificates is asked apart. */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    // checkIssued also wants an issuer allowed to sign certificates: caProblem says why not.
    return (cert.checkIssued(issuer) || cert.issuer === issuer.subject) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** TCG key purposes (EK Credential Profile; Infrastructure WG, AIK certificates). */
const TCG_KP_EK_CERTIFICATE = '2.23.133.8.1';
const TCG_KP_AIK_CERTIFICATE = '2.23.133.8.3';
/** tcg-at-tpmManufacturer: the TPM manufacturer attribute of an EK certificate's subject alternative name. */
const TCG_AT_TPM_MANUFACTURER = '2.23.133.2.1';

/** What a certificate's extensions say it is for; an absent extension is undefined. */
interface Purpose {
  readonly ca: boolean;
  /** basicConstraints pathLenConstraint: how many intermediates may follow this CA. */
  readonly pathLen?: number;
  readonly extendedKeyUsage?: readonly string[];
  readonly keyUsage?: number;
  /** Its subject alternative name names a TPM manufacturer (as EK certificates do). */
  readonly tpmManufacturer: boolean;
  /** Critical extensions nothing here understands: such a certificate must be refused (RFC 5280, 4.2). */
  readonly unknownCritical: readonly string[];
}

/**
 * The extensions whose meaning is honoured here, or which say nothing that limits a
 * certificate's use in this verifier (key identifiers, where to find CRLs and issuers,
 * policies, the TPM attributes TCG EK certificates carry in subjectDirectoryAttributes).
 * A critical extension outside this list (nameConstraints among them) fails the
 * certificate, as openssl does.
 */
const UNDERSTOOD_EXTENSIONS = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_extKeyUsage,
  id_ce_subjectAltName,
  '2.5.29.9', // subjectDirectoryAttributes (TCG: TPM specification and security assertions)
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.18', // issuerAltName
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies
  '2.5.29.35', // authorityKeyIdentifier
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
]);

function purposeOf(cert: X509Certificate): Purpose {
  const extensions = AsnConvert.parse(cert.raw, Certificate).tbsCertificate.extensions ?? [];
  const find = (id: string) => extensions.find((e) => e.extnID === id)?.extnValue.buffer;
  const basic = find(id_ce_basicConstraints);
  const eku = find(id_ce_extKeyUsage);
  const ku = find(id_ce_keyUsage);
  const san = find(id_ce_subjectAltName);
  const names = san ? AsnConvert.parse(san, SubjectAlternativeName) : [];
  const constraints = basic ? AsnConvert.parse(basic, BasicConstraints) : undefined;
  return {
    // Not X509Certificate.ca, which also wants keyCertSign: a CA flag is a CA flag.
    ca: constraints?.cA ?? false,
    ...(constraints?.cA && constraints.pathLenConstraint !== undefined && { pathLen: constraints.pathLenConstraint }),
    ...(eku && { extendedKeyUsage: [...AsnConvert.parse(eku, ExtendedKeyUsage)] }),
    ...(ku && { keyUsage: AsnConvert.parse(ku, KeyUsage).toNumber() }),
    tpmManufacturer: names.some((name) =>
      name.directoryName?.some((rdn) => rdn.some((attribute) => attribute.type === TCG_AT_TPM_MANUFACTURER)),
    ),
    unknownCritical: extensions.filter((e) => e.critical && !UNDERSTOOD_EXTENSIONS.has(e.extnID)).map((e) => e.extnID),
  };
}

/** Decoded once per certificate: a chain search asks again and again. */
const purposes = new WeakMap<X509Certificate, Purpose | string>();

/** The purpose, or why the extensions do not decode or cannot be honoured. */
function purpose(cert: X509Certificate): Purpose | string {
  let p = purposes.get(cert);
  if (p === undefined) {
    try {
      p = purposeOf(cert);
      if (p.unknownCritical.length > 0)
        p = `it has critical extensions not understood here (${p.unknownCritical.join(', ')})`;
    } catch (err) {
      p = `its extensions do not decode: ${(err as Error).message}`;
    }
    purposes.set(cert, p);
  }
  return p;
}

/** Why the extended key usage, when there is one, lacks `purpose`, or undefined. */
function lacksPurpose(p: Purpose, purpose: string, what: string): string | undefined {
  if (!p.extendedKeyUsage || p.extendedKeyUsage.includes(purpose)) return undefined;
  return `its extended key usage (${p.extendedKeyUsage.join(', ')}) lacks the ${what} certificate purpose ${purpose}`;
}

const SIGNING = KeyUsageFlags.digitalSignature | KeyUsageFlags.nonRepudiation;
const CERTIFYING = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign;
const DECRYPTING = KeyUsageFlags.keyEncipherment | KeyUsageFlags.keyAgreement;

/**
 * Why `cert` is not an EK certificate, or undefined when it is one: not a CA; its extended
 * key usage, when it has one, includes tcg-kp-EKCertificate (2.23.133.8.1); its key usage,
 * when it has one, allows no signing (an EK only decrypts); and something marks it as an
 * EK's: that key purpose, a TPM manufacturer in its subject alternative name (TCG EK
 * Credential Profile), or an encryption-only key usage (GCE's vTPM EK certificates carry
 * no extended key usage). A TLS or AK certificate fails.
 */
export function ekCertificateProblem(cert: X509Certificate): string | undefined {
  const p = purpose(cert);
  if (typeof p === 'string') return p;
  if (p.ca) return 'it is a CA certificate, not an EK certificate';
  const purposeProblem = lacksPurpose(p, TCG_KP_EK_CERTIFICATE, 'EK');
  if (purposeProblem) return purposeProblem;
  if (p.keyUsage !== undefined && p.keyUsage & (SIGNING | CERTIFYING)) {
    return 'its key usage allows signing, which an EK cannot do';
  }
  const marked =
    p.extendedKeyUsage !== undefined || p.tpmManufacturer || (p.keyUsage !== undefined && p.keyUsage & DECRYPTING);
  return marked
    ? undefined
    : `nothing marks it as an EK certificate (extended key usage ${TCG_KP_EK_CERTIFICATE}, a TPM manufacturer ` +
        'in its subject alternative name, or an encryption-only key usage)';
}

/**
 * Why `cert` is not an AK certificate, or undefined when it is one: not a CA; its extended
 * key usage, when it has one, includes tcg-kp-AIKCertificate (2.23.133.8.3); and it is
 * marked as a signing key's: that key purpose, or a key usage with digitalSignature and no
 * certificate signing (GCE's vTPM AK certificates carry no extended key usage). AK
 * certificates are trusted only under AK roots given apart from the EK roots.
 */
export function akCertificateProblem(cert: X509Certificate): string | undefined {
  const p = purpose(cert);
  if (typeof p === 'string') return p;
  if (p.ca) return 'it is a CA certificate, not an AK certificate';
  const purposeProblem = lacksPurpose(p, TCG_KP_AIK_CERTIFICATE, 'AK');
  if (purposeProblem) return purposeProblem;
  if (p.keyUsage !== undefined && (!(p.keyUsage & KeyUsageFlags.digitalSignature) || p.keyUsage & CERTIFYING)) {
    return 'its key usage is not that of a signing key (digitalSignature, no certificate signing)';
  }
  return p.extendedKeyUsage !== undefined || p.keyUsage !== undefined
    ? undefined
    : `nothing marks it as an AK certificate (extended key usage ${TCG_KP_AIK_CERTIFICATE}, ` +
        'or a digitalSignature key usage)';
}

/**
 * Whether `cert` may issue certificates `below` non-self-issued intermediates above the
 * leaf (RFC 5280, 6.1.4): a CA, with keyCertSign when it has a key usage, within its
 * pathLenConstraint.
 */
function caProblem(cert: X509Certificate, below: number): string | undefined {
  const p = purpose(cert);
  if (typeof p === 'string') return p;
  if (!p.ca) return 'it is not a CA certificate';
  if (p.keyUsage !== undefined && !(p.keyUsage & KeyUsageFlags.keyCertSign)) return 'its key usage lacks keyCertSign';
  if (p.pathLen !== undefined && below > p.pathLen) {
    return `its path length constraint (${p.pathLen}) allows fewer intermediates than the ${below} below it`;
  }
  return undefined;
}

/** The outcome of a chain check: the path to a root, or why there is none. */
type ChainResult = { ok: true; root: X509Certificate } | { ok: false; why: string };

/** At most this many intermediates between a leaf and its root; TPM vendors' chains have one to three. */
const MAX_CHAIN_INTERMEDIATES = 8;
/**
 * At most this many signatures checked for one chain. Each certificate is expanded once
 * and tried as the issuer of each other only when the names match, so a real chain needs
 * a handful; the cap bounds what a document of many same-named CAs can cost.
 */
export const MAX_SIGNATURE_CHECKS = 64;

/** Certificates with the same DER once. */
function unique(certs: readonly X509Certificate[]): X509Certificate[] {
  const seen = new Set<string>();
  return certs.filter((cert) => {
    const der = cert.raw.toString('base64');
    if (seen.has(der)) return false;
    seen.add(der);
    return true;
  });
}

const selfIssued = (cert: X509Certificate) => cert.subject === cert.issuer;

/**
 * Whether `leaf` chains to one of `roots`, through CA certificates among `intermediates`;
 * every certificate on the path, the root included, must be valid at `at`, carry no
 * critical extension not understood here, and respect the path length constraints.
 * Breadth first, each certificate expanded once, at its shortest distance from the leaf
 * (the most a path length constraint allows): the work is bounded by the certificates
 * given, at most MAX_SIGNATURE_CHECKS signatures and MAX_CHAIN_INTERMEDIATES deep.
 */
export function chainToRoots(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  at: Date = new Date(),
): ChainResult {
  if (!inValidity(leaf, at)) {
    return { ok: false, why: `${describe(leaf)} is outside its validity period (${validity(leaf)})` };
  }
  const leafPurpose = purpose(leaf);
  if (typeof leafPurpose === 'string') return { ok: false, why: `${describe(leaf)}: ${leafPurpose}` };
  const anchors = unique(roots);
  const pool = unique(intermediates).filter((cert) => !cert.raw.equals(leaf.raw));
  let checks = 0;
  const signs = (issuer: X509Certificate, cert: X509Certificate): boolean => {
    // The names first: no signature is checked for an issuer that cannot be the one.
    if (!cert.checkIssued(issuer) && cert.issuer !== issuer.subject) return false;
    if (++checks > MAX_SIGNATURE_CHECKS) throw new ChainBudget();
    return issuedBy(cert, issuer);
  };
  // Why each certificate that signed a link could not continue the path.
  const dead = new Map<X509Certificate, string>();
  const expanded = new Set<X509Certificate>();
  // Each entry: a certificate on a path from the leaf, and how many non-self-issued
  // intermediates lie between its issuer and the leaf.
  const queue: { cert: X509Certificate; below: number }[] = [{ cert: leaf, below: 0 }];
  try {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { cert, below } = next;
      for (const root of anchors) {
        if (!signs(root, cert)) continue;
        if (!inValidity(root, at)) {
          dead.set(root, `the root ${describe(root)} is outside its validity period (${validity(root)})`);
          continue;
        }
        const problem = rootProblem(root, below);
        if (!problem) return { ok: true, root };
        dead.set(root, `the root ${describe(root)}: ${problem}`);
      }
      if (below >= MAX_CHAIN_INTERMEDIATES) {
        dead.set(cert, `the path is longer than ${MAX_CHAIN_INTERMEDIATES} intermediates`);
        continue;
      }
      for (const issuer of pool) {
        if (expanded.has(issuer) || !signs(issuer, cert)) continue;
        expanded.add(issuer);
        const problem =
          caProblem(issuer, below) ??
          (inValidity(issuer, at) ? undefined : `outside its validity period (${validity(issuer)})`);
        if (problem) {
          dead.set(issuer, `the intermediate ${describe(issuer)}: ${problem}`);
          continue;
        }
        queue.push({ cert: issuer, below: below + (selfIssued(issuer) ? 0 : 1) });
      }
    }
  } catch (err) {
    if (!(err instanceof ChainBudget)) throw err;
    return {
      ok: false,
      why:
        `${describe(leaf)}: finding its chain took more than ${MAX_SIGNATURE_CHECKS} signature checks ` +
        '(too many same-named CAs)',
    };
  }
  const why = `${describe(leaf)} (issuer ${oneLine(leaf.issuer)}) does not chain to a given root`;
  return { ok: false, why: dead.size > 0 ? `${why}: ${[...dead.values()].join('; ')}` : why };
}

/** Thrown inside a chain search that ran out of signature checks. */
class ChainBudget extends Error {}

/**
 * Why a root cannot end this path: a trust anchor is trusted as given, but its
 * extensions, when it has them, still bind (openssl checks them too).
 */
function rootProblem(root: X509Certificate, below: number): string | undefined {
  const p = purpose(root);
  if (typeof p === 'string') return p;
  if (p.pathLen !== undefined && below > p.pathLen) {
    return `its path length constraint (${p.pathLen}) allows fewer intermediates than the ${below} below it`;
  }
  return undefined;
}
