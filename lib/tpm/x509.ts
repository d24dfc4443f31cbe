/**
 * What the X.509 objects a TPM key signs share (its certificate, its certification
 * request): the signature algorithm for the key, the signature itself made in the TPM,
 * and names (distinguished names, subject alternative names) from their text forms.
 * The structures come from @peculiar/asn1-x509; only the signature is ours.
 */
import { isIP } from 'node:net';

import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Extension,
  GeneralName,
  Name,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import * as asn1js from 'asn1js';

import { algorithmInfo, type AlgorithmInfo, type JwsAlgorithm } from '../algorithms.js';
import { invalidArgument, TpmJwtError } from '../errors.js';

/** What signing an X.509 object needs from a key: its public key and a way to sign. */
export interface X509Key {
  readonly publicKey: import('node:crypto').KeyObject;
  readonly algorithms: readonly JwsAlgorithm[];
  sign(data: Uint8Array, options: { alg: JwsAlgorithm }): Promise<Uint8Array>;
}

const DER_NULL = new Uint8Array([0x05, 0x00]).buffer;

/** The key's first algorithm that X.509 can name (ERR_TPM_UNSUPPORTED if none). */
function signatureAlgorithmOf(key: X509Key): AlgorithmInfo & Required<Pick<AlgorithmInfo, 'x509'>> {
  const info = key.algorithms.map((a) => algorithmInfo(a)).find((i) => i?.x509 !== undefined);
  if (info === undefined) {
    throw new TpmJwtError(
      'ERR_TPM_UNSUPPORTED',
      `no X.509 signature algorithm for a key that signs ${key.algorithms.join(', ')}`,
    );
  }
  return info as AlgorithmInfo & Required<Pick<AlgorithmInfo, 'x509'>>;
}

/** The AlgorithmIdentifier the key signs X.509 objects with: RSA OIDs take NULL parameters (RFC 4055). */
export function signatureAlgorithm(key: X509Key): AlgorithmIdentifier {
  const { x509 } = signatureAlgorithmOf(key);
  return new AlgorithmIdentifier({ algorithm: x509.oid, ...(x509.nullParameters && { parameters: DER_NULL }) });
}

/** JWS r || s to the DER ECDSA-Sig-Value X.509 (and AWS's SigV4-X509) wants. */
export function ecdsaDer(signature: Uint8Array): ArrayBuffer {
  const half = signature.length / 2;
  const integer = (bytes: Uint8Array) =>
    asn1js.Integer.fromBigInt(BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`));
  return new asn1js.Sequence({
    value: [integer(signature.subarray(0, half)), integer(signature.subarray(half))],
  }).toBER();
}

/** The signature over `der` (a TBSCertificate, a CertificationRequestInfo), made in the TPM, as X.509 holds it. */
export async function x509Signature(key: X509Key, der: Uint8Array): Promise<ArrayBuffer> {
  const info = signatureAlgorithmOf(key);
  const signature = await key.sign(der, { alg: info.alg });
  return info.x509.derSignature ? ecdsaDer(signature) : new Uint8Array(signature).buffer;
}

export function subjectPublicKeyInfo(key: X509Key): SubjectPublicKeyInfo {
  return AsnConvert.parse(key.publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
}

export function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** A Name of one common name. */
export function commonName(cn: string): Name {
  return new Name([new RelativeDistinguishedName([attribute(ATTRIBUTE_TYPES.CN!, cn)])]);
}

/** The attribute types a distinguished name may use by name (RFC 4514's, and serialNumber). */
const ATTRIBUTE_TYPES: Readonly<Record<string, { oid: string; encoding: 'utf8String' | 'printableString' }>> = {
  CN: { oid: '2.5.4.3', encoding: 'utf8String' },
  SERIALNUMBER: { oid: '2.5.4.5', encoding: 'printableString' },
  C: { oid: '2.5.4.6', encoding: 'printableString' },
  L: { oid: '2.5.4.7', encoding: 'utf8String' },
  ST: { oid: '2.5.4.8', encoding: 'utf8String' },
  STREET: { oid: '2.5.4.9', encoding: 'utf8String' },
  O: { oid: '2.5.4.10', encoding: 'utf8String' },
  OU: { oid: '2.5.4.11', encoding: 'utf8String' },
  DC: { oid: '0.9.2342.19200300.100.1.25', encoding: 'utf8String' },
  UID: { oid: '0.9.2342.19200300.100.1.1', encoding: 'utf8String' },
};

function attribute(type: { oid: string; encoding: 'utf8String' | 'printableString' }, value: string) {
  if (type.encoding === 'printableString' && !/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(value)) {
    throw invalidArgument(`subject: '${value}' is not a PrintableString, as ${type.oid} must be`);
  }
  return new AttributeTypeAndValue({ type: type.oid, value: new AttributeValue({ [type.encoding]: value }) });
}

/**
 * A distinguished name from its RFC 4514 text, as `openssl x509 -nameopt RFC2253` prints
 * it: `CN=device-42,O=Example,C=DE`, the most specific name first (so the DER holds it
 * last), `\` escaping a comma or any other character. One attribute per name (no `+`).
 */
export function distinguishedName(text: string): Name {
  if (typeof text !== 'string' || text.trim() === '') throw invalidArgument('subject must be a non-empty string');
  const rdns: RelativeDistinguishedName[] = [];
  for (const part of splitUnescaped(text, ',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalidArgument(`subject: '${part}' is not TYPE=value`);
    const name = part.slice(0, eq).trim();
    if (splitUnescaped(part, '+').length > 1) throw invalidArgument(`subject: '${part}': one attribute per name`);
    const type =
      ATTRIBUTE_TYPES[name.toUpperCase()] ??
      (/^\d+(\.\d+)+$/.test(name) ? { oid: name, encoding: 'utf8String' as const } : undefined);
    if (type === undefined) {
      throw invalidArgument(
        `subject: unknown attribute type '${name}' (${Object.keys(ATTRIBUTE_TYPES).join(', ')} or an OID)`,
      );
    }
    const value = unescape(part.slice(eq + 1).trim());
    if (value === '') throw invalidArgument(`subject: ${name} has no value`);
    rdns.unshift(new RelativeDistinguishedName([attribute(type, value)]));
  }
  return new Name(rdns);
}

/**
 * A name's RFC 4514 text, as distinguishedName reads it: most specific first, attribute
 * types by their short names (else the OID), special characters escaped. Two names are
 * the same when their texts are.
 */
export function nameText(name: Name): string {
  const short = new Map(Object.entries(ATTRIBUTE_TYPES).map(([label, { oid }]) => [oid, label]));
  return [...name]
    .reverse()
    .map((rdn) => [...rdn].map((a) => `${short.get(a.type) ?? a.type}=${attributeText(a.value)}`).join('+'))
    .join(',');
}

/**
 * An attribute value as RFC 4514 writes it: a string escaped, anything else `#` and the
 * hex of its DER (so that no string can read the same).
 */
function attributeText(value: AttributeValue): string {
  if (value.anyValue !== undefined) return `#${Buffer.from(value.anyValue).toString('hex')}`;
  return value.toString().replace(/([,+"\\<>;=#])/g, '\\$1');
}

/** A subject alternative name in the form generalName reads (`dns:`, `uri:`, `ip:`), or its kind for others. */
export function generalNameText(name: GeneralName): string {
  if (name.dNSName !== undefined) return `dns:${name.dNSName}`;
  if (name.uniformResourceIdentifier !== undefined) return `uri:${name.uniformResourceIdentifier}`;
  if (name.iPAddress !== undefined) return `ip:${name.iPAddress}`;
  const kind = Object.keys(name).find((k) => (name as unknown as Record<string, unknown>)[k] !== undefined);
  return `${kind ?? 'unknown'}:`;
}

/** `text` split at each `separator` that no backslash escapes. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

const unescape = (value: string) => value.replace(/\\(.)/g, '$1');

/**
 * A subject alternative name from `dns:NAME`, `uri:URI` or `ip:ADDRESS` (IPv4 or IPv6),
 * the forms of `tpm-jwt csr --san`.
 */
export function generalName(text: string): GeneralName {
  const colon = typeof text === 'string' ? text.indexOf(':') : -1;
  const kind = colon > 0 ? text.slice(0, colon).toLowerCase() : '';
  const value = colon > 0 ? text.slice(colon + 1) : '';
  if (kind === 'dns' && /^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(value))
    return new GeneralName({ dNSName: value });
  if (kind === 'uri' && URL.canParse(value)) return new GeneralName({ uniformResourceIdentifier: value });
  if (kind === 'ip' && isIP(value) !== 0) return new GeneralName({ iPAddress: value });
  throw invalidArgument(`subject alternative name '${text}': expected dns:NAME, uri:URI or ip:ADDRESS`);
}
