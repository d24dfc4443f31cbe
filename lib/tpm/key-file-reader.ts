/**
 * Reading a "TSS2 PRIVATE KEY" file (the format is described in key-file.ts) with
 * asn1js: whatever the input, the answer is a KeyFile or ERR_KEY_FILE_INVALID.
 */
import * as asn1js from 'asn1js';

import { TpmJwtError } from '../errors.js';
import { LABEL, LOADABLE_KEY_OID, type KeyFile } from './key-file.js';

const PEM = new RegExp(`-----BEGIN ${LABEL}-----([A-Za-z0-9+/=\\s]+)-----END ${LABEL}-----`);

function invalid(message: string): TpmJwtError {
  return new TpmJwtError('ERR_KEY_FILE_INVALID', `not a usable TSS2 PRIVATE KEY: ${message}`);
}

/**
 * A marshaled TPM2B held in an OCTET STRING. Its size prefix must cover the rest
 * exactly: tpm2-tss reads the structure inside and ignores a size that disagrees,
 * so two different files would otherwise load as the same key.
 */
function tpm2bOctets(block: asn1js.AsnType | undefined, what: string): Uint8Array {
  if (!(block instanceof asn1js.OctetString)) throw invalid(`${what} is not an OCTET STRING`);
  const bytes = new Uint8Array(block.valueBlock.valueHexView);
  if (bytes.length < 2 || ((bytes[0]! << 8) | bytes[1]!) !== bytes.length - 2) {
    throw invalid(`${what} is not one TPM2B (its size does not match its length)`);
  }
  return bytes;
}

function decodePolicy(block: asn1js.AsnType | undefined): KeyFile['policy'] {
  if (!(block instanceof asn1js.Sequence)) throw invalid('policy is not a SEQUENCE');
  return block.valueBlock.value.map((entry) => {
    const fields = entry instanceof asn1js.Sequence ? entry.valueBlock.value : [];
    const code = (fields[0] as asn1js.Constructed | undefined)?.valueBlock.value?.[0];
    const parameters = (fields[1] as asn1js.Constructed | undefined)?.valueBlock.value?.[0];
    if (!(code instanceof asn1js.Integer) || !(parameters instanceof asn1js.OctetString)) {
      throw invalid('a policy entry is not { [0] INTEGER, [1] OCTET STRING }');
    }
    return { code: Number(code.toBigInt()), policy: new Uint8Array(parameters.valueBlock.valueHexView) };
  });
}

/** Parses the PEM text. Throws ERR_KEY_FILE_INVALID for anything else. */
export function decodeKeyFile(text: string): KeyFile {
  try {
    return parseKeyFile(text);
  } catch (err) {
    if (err instanceof TpmJwtError) throw err;
    // asn1js throws plain Errors on some malformed encodings (a fuzz test found one).
    throw new TpmJwtError('ERR_KEY_FILE_INVALID', `not a usable TSS2 PRIVATE KEY: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function parseKeyFile(text: string): KeyFile {
  const match = typeof text === 'string' ? PEM.exec(text) : null;
  if (!match) throw invalid('no -----BEGIN TSS2 PRIVATE KEY----- block');
  const der = Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64');
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1 || parsed.offset !== der.length) throw invalid('malformed DER');
  const root = parsed.result;
  if (!(root instanceof asn1js.Sequence)) throw invalid('not a SEQUENCE');
  const items = [...root.valueBlock.value];

  const type = items.shift();
  if (!(type instanceof asn1js.ObjectIdentifier) || type.valueBlock.toString() !== LOADABLE_KEY_OID) {
    throw invalid(`type is not ${LOADABLE_KEY_OID} (a loadable key)`);
  }
  let emptyAuth = false;
  let policy: KeyFile['policy'] = [];
  // The optional context-tagged fields: [0] emptyAuth, [1] policy, [2] secret, ...
  while (items[0] && items[0].idBlock.tagClass === 3) {
    const tagged = items.shift()!;
    const inner = (tagged as asn1js.Constructed).valueBlock.value?.[0];
    if (tagged.idBlock.tagNumber === 0) {
      if (!(inner instanceof asn1js.Boolean)) throw invalid('emptyAuth is not a BOOLEAN');
      emptyAuth = inner.getValue();
    } else if (tagged.idBlock.tagNumber === 1) {
      policy = decodePolicy(inner);
    } else if (tagged.idBlock.tagNumber === 2) {
      throw new TpmJwtError('ERR_TPM_UNSUPPORTED', 'TSS2 keys with an imported secret are not supported');
    }
  }
  const parent = items.shift();
  if (!(parent instanceof asn1js.Integer)) throw invalid('parent is not an INTEGER');
  const parentHandle = parent.toBigInt();
  if (parentHandle < 0n || parentHandle > 0xffffffffn) throw invalid('parent is not a TPM handle');
  const key: KeyFile = {
    parent: Number(parentHandle),
    public: tpm2bOctets(items.shift(), 'pubkey'),
    private: tpm2bOctets(items.shift(), 'privkey'),
    emptyAuth,
    policy,
  };
  if (items.length > 0) throw invalid('unexpected fields after privkey');
  return key;
}
