/**
 * The "TSS2 PRIVATE KEY" PEM of tpm2-tss-engine, tpm2-openssl and tpm2_encodeobject:
 *
 *   TPMKey ::= SEQUENCE {
 *     type       OBJECT IDENTIFIER,            -- 2.23.133.10.1.3, a loadable key
 *     emptyAuth  [0] EXPLICIT BOOLEAN OPTIONAL,
 *     policy     [1] EXPLICIT SEQUENCE OF TPMPolicy OPTIONAL,
 *     secret     [2] EXPLICIT OCTET STRING OPTIONAL,
 *     parent     INTEGER,                      -- 0x40000001: the owner storage primary
 *     pubkey     OCTET STRING,                 -- marshaled TPM2B_PUBLIC
 *     privkey    OCTET STRING }                -- marshaled TPM2B_PRIVATE
 *
 * Writing it takes a few DER rules, written out here; reading it, which must survive
 * any input, is key-file-reader.ts's, on asn1js (loaded only by those who read one).
 */
import { pem } from '../encoding.js';

export const LOADABLE_KEY_OID = '2.23.133.10.1.3';
export const LABEL = 'TSS2 PRIVATE KEY';

export interface KeyFile {
  parent: number;
  public: Uint8Array;
  private: Uint8Array;
  /** What the file claims; tpm2-tools 5.4 writes it inverted, so it is only a hint. */
  emptyAuth: boolean;
  /** TPMPolicy entries: a command code and its marshaled parameters, in order. */
  policy: { code: number; policy: Uint8Array }[];
}

export function isKeyFilePem(text: string): boolean {
  return text.includes(`-----BEGIN ${LABEL}-----`);
}

/** A DER tag-length-value. */
function tlv(tag: number, value: Uint8Array): Buffer {
  const n = value.length;
  const length =
    n < 0x80
      ? [n]
      : n < 0x100
        ? [0x81, n]
        : n < 0x10000
          ? [0x82, n >> 8, n & 0xff]
          : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), value]);
}

const sequence = (...items: Uint8Array[]) => tlv(0x30, Buffer.concat(items));
/** A context-specific, constructed, EXPLICIT tag. */
const explicit = (tagNumber: number, value: Uint8Array) => tlv(0xa0 | tagNumber, value);

/** An unsigned INTEGER: big-endian, minimal, with a 0x00 first when the top bit is set. */
function integer(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  do {
    bytes.unshift(rest & 0xff);
    rest = Math.floor(rest / 256);
  } while (rest > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Uint8Array.from(bytes));
}

function objectIdentifier(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(Number);
  const bytes = [first! * 40 + second!];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let high = arc >>> 7; high > 0; high >>>= 7) base128.unshift((high & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return tlv(0x06, Uint8Array.from(bytes));
}

/** The PEM text for a key. */
export function encodeKeyFile(key: KeyFile): string {
  const policy = key.policy.map(({ code, policy: parameters }) =>
    sequence(explicit(0, integer(code)), explicit(1, tlv(0x04, parameters))),
  );
  const der = sequence(
    objectIdentifier(LOADABLE_KEY_OID),
    explicit(0, tlv(0x01, Uint8Array.of(key.emptyAuth ? 0xff : 0x00))),
    ...(policy.length === 0 ? [] : [explicit(1, sequence(...policy))]),
    integer(key.parent),
    tlv(0x04, key.public),
    tlv(0x04, key.private),
  );
  return pem(LABEL, der);
}
