/**
 * X.509 for the verifier: certificates from PEM, and whether one chains to a trusted
 * root through the intermediates given (signatures, issuer names, validity, CA flags),
 * with node:crypto's X509Certificate.
 */
import { X509Certificate } from 'node:crypto';

import { invalidArgument } from '../errors.js';

const PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in PEM text; throws ERR_INVALID_ARGUMENT for one that does not parse. */
export function parseCertificates(pem: string, what: string): X509Certificate[] {
  return (pem.match(PEM) ?? []).map((block) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw invalidArgument(`${what}: a certificate does not parse: ${(err as Error).message}`);
    }
  });
}

/** Trust anchors as callers give them: PEM text (one or many), or parsed certificates. */
export type Roots = string | readonly (string | X509Certificate)[];

/** The roots as certificates; none at all is ERR_INVALID_ARGUMENT. */
export function rootCertificates(roots: Roots): X509Certificate[] {
  const list = typeof roots === 'string' ? [roots] : roots;
  if (!Array.isArray(list)) throw invalidArgument('roots must be PEM text or a list of certificates');
  const out = list.flatMap((root) =>
    root instanceof X509Certificate ? [root] : typeof root === 'string' ? parseCertificates(root, 'roots') : [],
  );
  if (out.length === 0) throw invalidArgument('roots holds no certificate');
  return out;
}

const oneLine = (name: string): string => name.replace(/\n/g, ', ');

/** One line naming a certificate by its subject. */
export const describe = (cert: X509Certificate): string => oneLine(cert.subject);

function inValidity(cert: X509Certificate, at: Date): boolean {
  return new Date(cert.validFrom) <= at && at <= new Date(cert.validTo);
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The outcome of a chain check: the path to a root, or why there is none. */
export type ChainResult = { ok: true; root: X509Certificate } | { ok: false; why: string };

/**
 * Whether `leaf` chains to one of `roots`, through CA certificates among
 * `intermediates`; every certificate on the path must be valid at `at`.
 */
export function chainToRoots(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  at: Date = new Date(),
): ChainResult {
  if (!inValidity(leaf, at)) return { ok: false, why: `${describe(leaf)} is outside its validity period` };
  const walk = (cert: X509Certificate, seen: Set<X509Certificate>): X509Certificate | undefined => {
    const root = roots.find((r) => issuedBy(cert, r));
    if (root) return root;
    for (const next of intermediates) {
      if (seen.has(next) || !next.ca || !inValidity(next, at) || !issuedBy(cert, next)) continue;
      const found = walk(next, new Set([...seen, next]));
      if (found) return found;
    }
    return undefined;
  };
  const root = walk(leaf, new Set());
  if (root) return { ok: true, root };
  return { ok: false, why: `${describe(leaf)} (issuer ${oneLine(leaf.issuer)}) does not chain to a given root` };
}
