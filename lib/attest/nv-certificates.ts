/**
 * The certificates a TPM keeps in NV for attestation: EK certificates (TCG EK Credential
 * Profile, 2.2.1.5), their CA chain, and the AK certificate and template a platform
 * issues (GCE Shielded VM). All DER, in indices that may be larger than what they hold.
 * An index that cannot be read (not written, read-locked, readable only by a policy) is
 * skipped with a note: one odd index does not stop an attestation.
 */
import { X509Certificate } from 'node:crypto';

import { pem } from '../encoding.js';
import { TpmJwtError } from '../errors.js';
import type { NativeContext } from '../native.js';
import { formatHandle } from '../tpm/handle.js';
import type { EkCertificate } from '../wire/attestation-format.js';

/** EK certificate indices: low range RSA 2048 and ECC P-256, then the high range. */
const EK_CERTIFICATE_INDICES = [
  0x01c00002, 0x01c0000a, 0x01c00012, 0x01c00014, 0x01c00016, 0x01c00018, 0x01c0001a, 0x01c0001c, 0x01c0001e,
];
/** Where manufacturers put the EK certificate's CA chain, one or more DER certificates on. */
const EK_CHAIN_FIRST = 0x01c00100;
const EK_CHAIN_LAST = 0x01c001ff;
/** GCE's AK certificate and AK template (a TPMT_PUBLIC), by AK type. */
const PLATFORM_AK_INDICES = {
  rsa: { certificate: 0x01c10000, template: 0x01c10001 },
  ecc: { certificate: 0x01c10002, template: 0x01c10003 },
} as const;

/** The DER certificates at the start of `bytes`, stopping at padding (zeros or 0xff). */
function derCertificates(bytes: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset + 2 <= bytes.length && bytes[offset] === 0x30) {
    // A SEQUENCE with a short or long (1 to 4 bytes) definite length.
    const first = bytes[offset + 1]!;
    let length = first;
    let header = 2;
    if (first & 0x80) {
      const count = first & 0x7f;
      if (count < 1 || count > 4 || offset + 2 + count > bytes.length) break;
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i]!;
      header += count;
    }
    const end = offset + header + length;
    if (end > bytes.length) break;
    out.push(Buffer.from(bytes.subarray(offset, end)));
    offset = end;
  }
  return out;
}

/** The first certificate in an NV index's content, as PEM; undefined when it holds none. */
function certificateIn(bytes: Uint8Array): string | undefined {
  const [der] = derCertificates(bytes);
  if (!der) return undefined;
  try {
    return new X509Certificate(der).toString();
  } catch {
    return undefined;
  }
}

/** What the TPM's NV holds for attestation. */
interface NvCertificates {
  ek: EkCertificate[];
  chain: string[];
  /** The platform's AK certificate (PEM) and template for the AK type asked for. */
  ak: { certificate?: string; template?: Buffer };
  /** The indices skipped, and why. */
  notes: string[];
}

/** Failures that say nothing about one index but about the connection: never skipped. */
const NOT_THE_INDEX = new Set(['ERR_TPM_CONNECTION', 'ERR_TPM_CLOSED', 'ERR_TPM_OBJECT_MEMORY']);

/** The content of `index`, or undefined (with a note) when the TPM will not give it. */
async function readIndex(context: NativeContext, index: number, notes: string[]): Promise<Buffer | undefined> {
  try {
    return await context.nvRead(index);
  } catch (err) {
    if (!(err instanceof TpmJwtError) || NOT_THE_INDEX.has(err.code)) throw err;
    notes.push(`NV ${formatHandle(index)} skipped: ${err.message}`);
    return undefined;
  }
}

/** The certificate in `index`, or undefined (with a note) when it cannot be read or holds none. */
async function certificateAt(context: NativeContext, index: number, notes: string[]): Promise<string | undefined> {
  const bytes = await readIndex(context, index, notes);
  if (!bytes) return undefined;
  const pem = certificateIn(bytes);
  if (!pem) notes.push(`NV ${formatHandle(index)} skipped: it holds no DER certificate`);
  return pem;
}

/** The platform's AK template of `akType` (GCE), when NV has a readable one. */
export async function platformAkTemplate(
  context: NativeContext,
  akType: 'rsa' | 'ecc',
  defined?: ReadonlySet<number>,
  notes: string[] = [],
): Promise<Buffer | undefined> {
  const index = PLATFORM_AK_INDICES[akType].template;
  const present = defined ?? new Set(await context.handles(index, 1));
  return present.has(index) ? readIndex(context, index, notes) : undefined;
}

/** Reads the EK certificates, their chain and the platform AK certificate and template of `akType`. */
export async function readNvCertificates(context: NativeContext, akType: 'rsa' | 'ecc'): Promise<NvCertificates> {
  const defined = new Set(await context.handles(0x01c00000, 1024));
  const out: NvCertificates = { ek: [], chain: [], ak: {}, notes: [] };
  for (const index of EK_CERTIFICATE_INDICES) {
    if (!defined.has(index)) continue;
    const pem = await certificateAt(context, index, out.notes);
    if (pem) out.ek.push({ index: formatHandle(index), pem });
  }
  const chain: Buffer[] = [];
  for (const index of [...defined].filter((i) => i >= EK_CHAIN_FIRST && i <= EK_CHAIN_LAST).sort((a, b) => a - b)) {
    const bytes = await readIndex(context, index, out.notes);
    if (bytes) chain.push(bytes);
  }
  // A certificate may run on from one index into the next (read them as one), or each
  // index may hold its own, padded: whichever reading finds more.
  const joined = derCertificates(Buffer.concat(chain));
  const apart = chain.flatMap((bytes) => derCertificates(bytes));
  out.chain = (apart.length > joined.length ? apart : joined).map((der) => pem('CERTIFICATE', der));
  const platform = PLATFORM_AK_INDICES[akType];
  if (defined.has(platform.certificate)) {
    const certificate = await certificateAt(context, platform.certificate, out.notes);
    if (certificate) out.ak.certificate = certificate;
  }
  const template = await platformAkTemplate(context, akType, defined, out.notes);
  if (template) out.ak.template = template;
  return out;
}
